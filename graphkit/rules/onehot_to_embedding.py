"""Rule: ``OneHot`` -> ``Dense`` (or ``TimeDistributed(Dense)``) becomes one ``Embedding``.

Row ``i`` of the new table is what the Dense gives for one-hot ``i``: bias and
activation fold in, computed with the Dense's own ops in its compute dtype (see
``folded_table``). A Dense without bias or activation is copied as is (this keeps
``embedding -> onehot-dense -> embedding`` bitwise, even under mixed precision).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from graphkit.graph import OUTPUT
from graphkit.rules.base import Bypass, Chain, Match, Refusal, all_finite

NAME = "onehot_to_embedding"
# Activations whose value is computed exactly (no rounding) or by one correctly rounded op, so
# the folded table matches the Dense bit for bit. Others (tanh, sigmoid, softmax, gelu...) go
# through TensorFlow's vectorised CPU kernels, whose rounding can differ by an ulp or so with
# the shape of the batch: the fold is then exact up to that rounding, and says so.
EXACT_ACTIVATIONS = {"linear", "relu", "relu6"}


def dense_consumers(layer, graph, *, why_not=None, why_shared=None) -> list | Refusal:
    """The Dense-like layers (Dense, TimeDistributed(Dense)) that read ``layer``'s output, each
    applied to that output alone; or why not (``why_not(consumer)`` for a consumer that is
    not one, ``why_shared(consumer)`` for one also applied to other tensors)."""
    why_not = why_not or (
        lambda c: (
            f"its output also feeds {c.name!r} ({type(c).__name__}), "
            "which cannot fold into an Embedding"
        )
    )
    why_shared = why_shared or (
        lambda c: f"{c.name!r} is also applied to other tensors; folding it would change them"
    )
    consumers = []
    for site in graph.call_sites(layer):
        for consumer, is_main in site.consumers:
            if consumer is OUTPUT:
                return Refusal("its output is a model output", severity="kept")
            if not is_main or _inner_dense(consumer) is None:
                return Refusal(why_not(consumer), severity="kept")
            if consumer not in consumers:
                consumers.append(consumer)
    if not consumers:
        return Refusal("its output is not used by a Dense layer", severity="kept")
    for consumer in consumers:
        if any(site.producer is not layer for site in graph.call_sites(consumer)):
            return Refusal(why_shared(consumer), severity="kept")
    return consumers


def _inner_dense(layer):
    """The Dense a consumer applies on the last axis, or None if it is not such a consumer."""
    import keras

    from graphkit.layers import TimeDistributed

    if type(layer) is keras.layers.Dense:
        return layer
    if type(layer) in (keras.layers.TimeDistributed, TimeDistributed):
        if type(layer.layer) is keras.layers.Dense:
            return layer.layer
    return None


def folded_table(dense) -> np.ndarray:
    """Row i = what the Dense gives for one-hot i: ``activation(kernel[i] + bias)``.

    A one-hot row times the kernel is exactly ``kernel[i]`` (every other term is an exact
    zero), so the rows are computed the way Dense computes them, in its compute dtype
    (kernel and bias cast to it, then add, then activation), at O(vocab x units) instead of
    running a (vocab x vocab) one-hot product. Returned in the kernel's variable dtype.
    """
    import keras

    kernel = keras.ops.convert_to_numpy(dense.kernel)  # numpy arrays from here
    linear = dense.activation in (keras.activations.linear, None)
    if not dense.use_bias and linear:
        return kernel.copy()
    dtype = dense.compute_dtype
    rows = keras.ops.cast(kernel, dtype)
    if dense.use_bias:
        rows = keras.ops.add(rows, keras.ops.cast(dense.bias, dtype))
    if not linear:
        rows = dense.activation(rows)
    return keras.ops.convert_to_numpy(rows).astype(kernel.dtype)


class OneHotToEmbedding:
    name = NAME
    summary = (
        "OneHot -> Dense or TimeDistributed(Dense) becomes one Embedding; bias and activation "
        "fold into the table"
    )
    targets = ("embedding",)
    phase = "convert"
    source = "onehot-dense"
    anchor_label = "OneHot + Dense group"
    optional = False
    exact = False  # transcendental activations fold to within an ulp (see EXACT_ACTIVATIONS)
    inspect = {
        "label": "OneHot",
        "role": "onehot",
        "group": "OneHot group",  # how the summary counts it, and how its members are marked
        "member_role": "onehot-dense",
        "yes": "foldable",
        "becomes": "-> Embedding",
        "no": "not foldable",
    }

    def anchors(self, layer) -> bool:
        from graphkit.layers import OneHot

        return isinstance(layer, OneHot)

    def index_range(self, layer) -> tuple[int, bool] | None:
        return (int(layer.input_dim), bool(layer.mask_zero)) if self.anchors(layer) else None

    def _consumers(self, layer, graph) -> list | Refusal:
        """The Dense-like layers that read the one-hot, each applied to it alone."""
        return dense_consumers(layer, graph)

    def covers(self, layer, graph) -> list[str]:
        consumers = self._consumers(layer, graph)
        return [] if isinstance(consumers, Refusal) else [c.name for c in consumers]

    def check(self, layer, graph) -> Refusal | None:

        from graphkit.layers import OneHot

        if type(layer) is not OneHot:
            return Refusal(f"{type(layer).__name__} subclasses OneHot; not rewritten")
        consumers = self._consumers(layer, graph)
        if isinstance(consumers, Refusal):
            return consumers
        for consumer in consumers:
            dense = _inner_dense(consumer)
            if not dense.built:
                return Refusal(f"{consumer.name!r} is not built", severity="kept")
            if getattr(dense, "quantization_mode", None):
                return Refusal(
                    f"{consumer.name!r} is quantized ({dense.quantization_mode}); graphkit folds float kernels only",
                    severity="kept",
                )
            weights = [dense.kernel] + ([dense.bias] if dense.use_bias else [])
            if not all(all_finite(w) for w in weights):
                return Refusal(
                    f"the kernel or bias of {consumer.name!r} holds inf or NaN", severity="kept"
                )
        return None

    def rewrite(self, layer, graph, ctx) -> Match | Refusal:
        import keras
        import numpy as np

        consumers = self._consumers(layer, graph)
        replacements = {id(layer): Bypass()}
        names = []
        for consumer in consumers:
            dense = _inner_dense(consumer)
            table = folded_table(dense)
            if not bool(keras.ops.all(keras.ops.isfinite(table))):  # the activation overflowed
                return Refusal(
                    f"the folded table of {consumer.name!r} holds inf or NaN", severity="kept"
                )
            wrap = getattr(layer, "wrap", None)
            if wrap is not None and wrap < layer.input_dim:
                # index i is one-hot row i % wrap: the table repeats those rows, exactly
                table = table[np.arange(layer.input_dim) % wrap]
                ctx.note(
                    f"{layer.name!r} takes indices modulo {wrap}: table row i is the folded row "
                    f"i % {wrap} (rows {wrap}..{layer.input_dim - 1} repeat earlier rows), as "
                    "the one-hot did"
                )
            identity = not dense.use_bias and dense.activation in (keras.activations.linear, None)
            base = layer.name[: -len("_onehot")] if layer.name.endswith("_onehot") else None
            if graph.is_output(consumer):
                wanted = consumer.name  # outputs are matched by name: keep it
            elif base and consumer.name in (f"{base}_dense", f"{base}_timedist"):
                wanted = base
            else:
                wanted = f"{consumer.name}_embedding"
            ctx.release(layer.name)
            ctx.release(consumer.name)
            embedding = keras.layers.Embedding(
                layer.input_dim,
                dense.units,
                mask_zero=layer.mask_zero,
                name=ctx.unique_name(wanted),
                dtype=dense.dtype_policy,
                embeddings_initializer=dense.kernel_initializer,
                embeddings_regularizer=dense.kernel_regularizer if identity else None,
                embeddings_constraint=dense.kernel_constraint if identity else None,
                activity_regularizer=consumer.activity_regularizer or dense.activity_regularizer,
            )
            embedding.build()
            embedding.embeddings.assign(table.astype(embedding.embeddings.dtype, copy=False))
            embedding.trainable = consumer.trainable and dense.trainable
            if not identity:
                parts = (["bias"] if dense.use_bias else []) + (
                    [f"activation {keras.activations.serialize(dense.activation)!r}"]
                    if dense.activation not in (keras.activations.linear, None)
                    else []
                )
                ctx.note(f"{' and '.join(parts)} of {consumer.name!r} folded into the table")
                act = keras.activations.serialize(dense.activation)
                act = act if isinstance(act, str) else str(act)
                if act not in EXACT_ACTIVATIONS:
                    ctx.note(
                        f"activation {act!r} is computed by kernels whose float rounding depends on "
                        "the batch shape: outputs equal up to about 1 ulp, not bit for bit"
                    )
                if dense.kernel_regularizer is not None or dense.kernel_constraint is not None:
                    ctx.note(
                        f"kernel regularizer/constraint of {consumer.name!r} dropped: they do not apply to a folded table"
                    )
            replacements[id(consumer)] = Chain([embedding])
            names.append(embedding.name)
        return Match(
            replacements=replacements,
            new_layer_names=names,
            replaced_names=[layer.name] + [c.name for c in consumers],
        )
