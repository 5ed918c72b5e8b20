"""Rule: ``Embedding`` -> ``OneHot`` + ``TimeDistributed(Dense(use_bias=False))``.

The Embedding table *is* the Dense kernel: a one-hot row times the kernel picks
one row exactly (every other term is an exact 0 in the sum), so the predictions
are bitwise equal for valid indices. A table holding inf or NaN would break this
(0 * inf is NaN), so such tables are refused.
"""

from __future__ import annotations

import numpy as np

from graphkit.rules.base import Chain, Match, Refusal

NAME = "embedding_to_onehot"


def unique_name(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name = f"{base}_{i}"
        i += 1
    taken.add(name)
    return name


class EmbeddingToOneHot:
    name = NAME
    target = "onehot-dense"

    def __init__(self, taken_names: set[str]):
        self.taken = taken_names

    def anchors(self, layer) -> bool:
        import keras

        return isinstance(layer, keras.layers.Embedding)

    def match(self, layer, graph) -> Match | Refusal:
        import keras

        from graphkit.layers import OneHot, TimeDistributed

        if type(layer) is not keras.layers.Embedding:
            return Refusal(
                f"{type(layer).__name__} subclasses Embedding; its call may differ, so it is not rewritten"
            )
        if not layer.built:
            return Refusal("the Embedding is not built (it holds no table yet)")
        if getattr(layer, "quantization_mode", None):
            return Refusal(
                f"the Embedding is quantized ({layer.quantization_mode}); graphkit converts float tables only"
            )
        if getattr(layer, "lora_enabled", False):
            return Refusal("the Embedding has LoRA enabled; merge or disable LoRA first")
        table = keras.ops.convert_to_numpy(layer.embeddings)
        if not np.all(np.isfinite(table)):
            return Refusal(
                "the table holds inf or NaN: a one-hot MatMul would turn them into NaN everywhere"
            )
        sites = graph.call_sites(layer)
        ranks = [s.input_rank for s in sites]
        use_td = bool(ranks) and all(r is not None and r >= 2 for r in ranks)

        policy = layer.dtype_policy
        # A model output keeps its name (outputs are matched by name): the last new layer takes
        # it over from the Embedding it replaces.
        keep_name = graph.is_output(layer)
        onehot = OneHot(
            layer.input_dim,
            mask_zero=layer.mask_zero,
            name=unique_name(f"{layer.name}_onehot", self.taken),
            dtype=policy,
        )
        dense = keras.layers.Dense(
            layer.output_dim,
            use_bias=False,
            name=layer.name
            if keep_name and not use_td
            else unique_name(f"{layer.name}_dense", self.taken),
            dtype=policy,
            kernel_initializer=layer.embeddings_initializer,
            kernel_regularizer=layer.embeddings_regularizer,
            kernel_constraint=layer.embeddings_constraint,
            activity_regularizer=None if use_td else layer.activity_regularizer,
        )
        dense.build((None, layer.input_dim))
        dense.kernel.assign(table.astype(dense.kernel.dtype, copy=False))
        projection = dense
        if use_td:
            projection = TimeDistributed(
                dense,
                name=layer.name if keep_name else unique_name(f"{layer.name}_timedist", self.taken),
                dtype=policy,
                activity_regularizer=layer.activity_regularizer,
            )
            projection.build((None, None, layer.input_dim))
        onehot.trainable = layer.trainable
        projection.trainable = layer.trainable
        return Match(
            replacements={id(layer): Chain([onehot, projection])},
            new_layer_names=[onehot.name, projection.name],
            replaced_names=[layer.name],
        )
