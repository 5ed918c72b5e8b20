"""Rule: graphkit's ``OneHotReversibleEmbedding`` -> ``keras.layers.ReversibleEmbedding``.

The inverse of ``reversible_embedding_to_onehot``: same config, variables copied bit for
bit, one layer at every call site (``reverse=True`` passed on), so the round trip gives back
the same table and the same tie.
"""

from __future__ import annotations

from graphkit.rules.base import Match, Refusal, Swap
from graphkit.swaps import twin

NAME = "onehot_reversible_to_embedding"


class OneHotReversibleToEmbedding:
    name = NAME
    summary = (
        "graphkit's OneHotReversibleEmbedding -> ReversibleEmbedding, one layer at every call "
        "site, variables bit for bit"
    )
    targets = ("embedding",)
    phase = "convert"
    source = "onehot-dense"
    anchor_label = "OneHotReversibleEmbedding"
    optional = False
    exact = True
    inspect = {
        "label": "OneHotReversibleEmbedding",
        "role": "onehot",
        "yes": "convertible",
        "becomes": "-> ReversibleEmbedding",
        "no": "not convertible",
    }

    def anchors(self, layer) -> bool:
        from graphkit.layers import OneHotReversibleEmbedding

        return type(layer) is OneHotReversibleEmbedding

    def index_range(self, layer) -> tuple[int, bool] | None:
        return (int(layer.input_dim), bool(layer.mask_zero)) if self.anchors(layer) else None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        return self.swap_check(layer)

    def swap_check(self, layer) -> Refusal | None:
        if not layer.built:
            return Refusal("the OneHotReversibleEmbedding is not built (it holds no table yet)")
        if getattr(layer, "quantization_mode", None):
            return Refusal(
                f"the OneHotReversibleEmbedding is quantized ({layer.quantization_mode}); "
                "graphkit converts float tables only"
            )
        if getattr(layer, "lora_enabled", False):
            # its LoRA variables would not be carried over
            return Refusal(
                "the OneHotReversibleEmbedding has LoRA enabled; merge or disable LoRA first"
            )
        return None

    def swap(self, layer, ctx):
        """The Keras layer back, for a graph call site or a custom layer's attribute."""
        import keras

        return self.swap_check(layer) or twin(layer, keras.layers.ReversibleEmbedding)

    def rewrite(self, layer, graph, ctx) -> Match:
        new = self.swap(layer, ctx)
        return Match(
            replacements={id(layer): Swap(new)},
            new_layer_names=[new.name],
            replaced_names=[layer.name],
        )
