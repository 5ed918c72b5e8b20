"""Rule: Keras' ``TimeDistributed`` -> graphkit's ``TimeDistributed`` (same inner layer, same weights).

Keras 3.15's ``TimeDistributed`` maps over the batch axis instead of the time axis
whenever it is traced with an unknown time dimension (``predict`` after a retrace,
``tf.function`` with a ``(None, None)`` signature, tf2onnx's export): a (4, 35)
batch gives (4, 4, ...) or fails. With a static time axis it unrolls a Python loop.
graphkit's version applies a Dense on the last axis and folds time into batch for
the other supported inner layers, which is right at every length and never loops.

Only inner layers that treat every sample on their own are folded (no statistics
across the batch, no state): for those, one call on ``batch * time`` samples is the
per-step calls stacked, up to float rounding: Keras multiplies one (batch x units) matrix
per step, graphkit one matrix over all steps, and MatMul kernels may round differently
with the number of rows (measured: bitwise with oneDNN's AVX-512 kernels, up to ~1.5e-8
with its AVX2 kernels or with Eigen's, ``TF_ENABLE_ONEDNN_OPTS=0``). A repaired model and
its source therefore agree within a few ulps, not always bit for bit. The rule is a repair, not a conversion: it runs before the
target's rules in ``convert`` and before tracing in ``export``; when it refuses, the
layer is kept as it was (never an error).
"""

from __future__ import annotations

from graphkit.rules.base import Chain, Match, Refusal

NAME = "repair_time_distributed"
WHY = (
    "Keras' TimeDistributed maps over the batch axis when traced with an unknown time axis "
    "(wrong shapes in predict and ONNX) and unrolls a known one"
)

# Layers that compute each sample on its own (per-sample maths, no cross-batch statistics,
# no state): folding time into batch computes exactly the per-step calls.
_PER_SAMPLE = (
    "Dense",
    "EinsumDense",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "Softmax",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "Embedding",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "SeparableConv1D",
    "SeparableConv2D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "Cropping1D",
    "Cropping2D",
    "UpSampling1D",
    "UpSampling2D",
    "LayerNormalization",
    "UnitNormalization",
    "Rescaling",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
)


def unsupported_part(layer) -> str | None:
    """Why graphkit's TimeDistributed cannot fold ``layer`` (None when it can)."""
    import keras

    from graphkit import _keras_api
    from graphkit.engine import is_graph_model

    if is_graph_model(layer):
        graph = _keras_api.functional_graph(layer)
        for node in _keras_api.nodes_inputs_first(graph):
            op = node.operation
            if node.is_input or op is None or isinstance(op, keras.layers.InputLayer):
                continue
            if not isinstance(op, keras.layers.Layer):  # keras.ops call in the graph
                return f"operation {op.name!r} ({type(op).__name__}) may mix samples"
            reason = unsupported_part(op)
            if reason is not None:
                return reason
        return None
    cls = type(layer)
    if cls.__module__.startswith("keras.") and cls.__name__ in _PER_SAMPLE:
        if getattr(layer, "stateful", False):
            return f"{layer.name!r} ({cls.__name__}) is stateful"
        if _touches_batch_axis(layer):
            return f"{layer.name!r} ({cls.__name__}) computes across axis 0, the batch"
        if isinstance(layer, keras.layers.Bidirectional):
            return unsupported_part(layer.forward_layer) or unsupported_part(layer.backward_layer)
        return None
    if isinstance(layer, keras.layers.InputLayer):
        return None
    return f"{layer.name!r} ({cls.__name__}) is not a layer graphkit knows to compute per sample"


def _touches_batch_axis(layer) -> bool:
    """Does an ``axis`` argument (Softmax, LayerNormalization...) include axis 0?"""
    axis = getattr(layer, "axis", None)
    if axis is None:
        return False
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    rank = None
    try:
        rank = len(layer.input.shape) if hasattr(layer, "input") else None
    except Exception:
        rank = None
    for a in axes:
        if not isinstance(a, int):
            continue
        if a == 0 or (rank is not None and a < 0 and a + rank == 0):
            return True
    return False


class RepairTimeDistributed:
    name = NAME
    summary = (
        "Keras' TimeDistributed -> graphkit's (same inner layer and weights), which is right "
        "at every length when traced"
    )
    targets = ("*",)
    phase = "repair"
    source = None
    anchor_label = "Keras TimeDistributed"
    # Refusals keep Keras' layer as it is: they never stop a conversion.
    optional = True
    exact = False  # per-step vs one MatMul: within a few ulps on some kernels
    inspect = {
        "label": "Keras TimeDistributed",
        "role": "repair",
        "yes": "repaired on convert and export",
        "becomes": "(wrong when traced with an unknown time axis)",
        "no": "kept",
    }

    def anchors(self, layer) -> bool:
        import keras

        return type(layer) is keras.layers.TimeDistributed

    def index_range(self, layer) -> tuple[int, bool] | None:
        return None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        reason = unsupported_part(layer.layer)
        if reason is not None:
            return Refusal(
                f"Keras' TimeDistributed kept: inner {reason}; "
                "it is wrong when traced with an unknown time axis",
                severity="kept",
            )
        return None

    def rewrite(self, layer, graph, ctx) -> Match:
        from graphkit.layers import TimeDistributed

        # Same name (outputs are matched by name), same inner layer object (same weights).
        config = layer.get_config()
        config.pop("layer", None)
        repaired = TimeDistributed(layer.layer, **config)
        return Match(
            replacements={id(layer): Chain([repaired])},
            new_layer_names=[repaired.name],
            notes=[WHY],
            replaced_names=[layer.name],
            status="repaired",
        )
