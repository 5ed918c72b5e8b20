"""Rule: graphkit's ``OneHotEmbedding`` -> ``keras.layers.Embedding`` (same config, same table).

``OneHotEmbedding`` is what ``embedding_to_onehot`` puts in place of an Embedding that a
custom layer or subclassed model holds as an attribute (graph surgery cannot reach it; see
``graphkit.swaps``). Going back is the same swap the other way: the table is copied bit for
bit and the owner's own class comes back, so its file is the user's again. At the graph
level (a ``OneHotEmbedding`` called in a Functional model) the layer is replaced at every
call site, call arguments included.
"""

from __future__ import annotations

from graphkit.rules.base import Match, Refusal, Swap

NAME = "onehot_embedding_to_embedding"


class OneHotEmbeddingToEmbedding:
    name = NAME
    summary = "graphkit's OneHotEmbedding (a swapped attribute) -> Embedding, table bit for bit"
    targets = ("embedding",)
    phase = "convert"
    source = "onehot-dense"
    anchor_label = "OneHotEmbedding"
    optional = False
    exact = True
    inspect = {
        "label": "OneHotEmbedding",
        "role": "onehot",
        "yes": "convertible",
        "becomes": "-> Embedding",
        "no": "not convertible",
    }

    def anchors(self, layer) -> bool:
        from graphkit.layers import OneHotEmbedding

        return type(layer) is OneHotEmbedding

    def index_range(self, layer) -> tuple[int, bool] | None:
        return (int(layer.input_dim), bool(layer.mask_zero)) if self.anchors(layer) else None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        if not layer.built:
            return Refusal("the OneHotEmbedding is not built (it holds no table yet)")
        if getattr(layer, "lora_enabled", False):
            return Refusal("it has LoRA enabled; merge or disable LoRA first")
        return None

    def swap_check(self, layer) -> Refusal | None:
        return self.check(layer, None)

    def swap(self, layer, ctx):
        import keras

        from graphkit.swaps import twin

        return self.check(layer, None) or twin(layer, keras.layers.Embedding)

    def rewrite(self, layer, graph, ctx) -> Match:
        new = self.swap(layer, ctx)
        if isinstance(new, Refusal):
            return new
        return Match(
            replacements={id(layer): Swap(new)},
            new_layer_names=[new.name],
            replaced_names=[layer.name],
        )
