"""Rule: ``keras.layers.ReversibleEmbedding`` -> graphkit's ``OneHotReversibleEmbedding``.

A ReversibleEmbedding is called twice in a language model: ``emb(tokens)`` looks rows up,
``emb(h, reverse=True)`` projects back to logits with the same table (``tie_weights=True``)
or its own ``reverse_embeddings``. Splitting it into OneHot + Dense would untie the two, so
it is replaced by one ``OneHotReversibleEmbedding``: same config (``tie_weights``,
``reverse_dtype``, ``logit_soft_cap``, ``mask_zero``, dtype policy), same variables copied
bit for bit, the same object at every call site (a ``Swap``, which passes ``reverse=True``
on). The lookup becomes ``one_hot(x) @ table``, exactly the table's row for
``0 <= x < input_dim``; the reverse call is unchanged. The parameter count stays the same.
"""

from __future__ import annotations

from graphkit.rules.base import Match, Refusal, Swap, note_lora_dropped, table_refusal
from graphkit.swaps import twin

NAME = "reversible_embedding_to_onehot"


class ReversibleEmbeddingToOneHot:
    name = NAME
    summary = (
        "ReversibleEmbedding -> OneHotReversibleEmbedding (lookup one_hot(x) @ table, reverse "
        "call unchanged), one layer at every call site: the tie stays, variables bit for bit"
    )
    targets = ("onehot-dense",)
    phase = "convert"
    source = "embedding"
    anchor_label = "ReversibleEmbedding"
    optional = False
    exact = True
    inspect = {
        "label": "ReversibleEmbedding",
        "role": "embedding",
        "yes": "convertible",
        "becomes": "-> OneHotReversibleEmbedding",
        "no": "not convertible",
    }

    def anchors(self, layer) -> bool:
        import keras

        return type(layer) is keras.layers.ReversibleEmbedding

    def index_range(self, layer) -> tuple[int, bool] | None:
        return (int(layer.input_dim), bool(layer.mask_zero)) if self.anchors(layer) else None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        return table_refusal(layer, "ReversibleEmbedding")

    def swap_check(self, layer) -> Refusal | None:
        return table_refusal(layer, "ReversibleEmbedding")

    def swap(self, layer, ctx):
        """The twin of a ReversibleEmbedding that a custom layer holds as an attribute."""
        from graphkit.layers import OneHotReversibleEmbedding

        refusal = self.swap_check(layer)
        if refusal is not None:
            return refusal
        note_lora_dropped(layer, ctx)
        return twin(layer, OneHotReversibleEmbedding)

    def rewrite(self, layer, graph, ctx) -> Match:
        new = self.swap(layer, ctx)  # same name: it takes the place of the old layer
        return Match(
            replacements={id(layer): Swap(new)},
            new_layer_names=[new.name],
            replaced_names=[layer.name],
        )
