"""A ``TimeDistributed`` that is correct for variable-length time axes and never loops.

Keras 3.15's ``TimeDistributed`` maps over ``arange(batch_size)`` instead of the
time steps when the time axis is ``None`` (wrong shapes), and loops over steps in
Python when it is static (slow, and unrolled on ONNX export). For a ``Dense``
inner layer the whole wrapper is just the Dense on the last axis; for any other
inner layer we fold the time axis into the batch axis, apply it once, and unfold.
That is exact for inner layers that compute every sample on its own (see
``graphkit.rules.repair_time_distributed``), which is what Keras' per-step loop assumes.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="graphkit", name="TimeDistributed")
class TimeDistributed(keras.layers.TimeDistributed):
    """Drop-in ``keras.layers.TimeDistributed`` without the loop and the None-axis bug."""

    def call(self, inputs, training=None, mask=None):
        if isinstance(self.layer, keras.layers.Dense):
            # Dense contracts the last axis only: same maths, one MatMul.
            return self.layer(inputs)
        shape = ops.shape(inputs)
        folded = ops.reshape(inputs, (-1,) + self._static_or_dynamic(inputs, shape, 2))
        kwargs = {"training": training} if self._inner_takes("training") else {}
        if mask is not None and self._inner_takes("mask"):
            # Keras passes step i's slice of the mask to the inner layer: the same, folded.
            mask_shape = ops.shape(mask)
            kwargs["mask"] = ops.reshape(mask, (-1,) + tuple(mask_shape[2:]))
        outputs = self.layer(folded, **kwargs)
        out_inner = self._static_or_dynamic(outputs, ops.shape(outputs), 1)
        return ops.reshape(outputs, (shape[0], shape[1]) + out_inner)

    @staticmethod
    def _static_or_dynamic(tensor, dynamic_shape, start: int) -> tuple:
        static = tuple(tensor.shape[start:])
        if any(d is None for d in static):
            return tuple(dynamic_shape[start:])
        return static

    def _inner_takes(self, argument: str) -> bool:
        return bool(getattr(self.layer, f"_call_has_{argument}_arg", False))
