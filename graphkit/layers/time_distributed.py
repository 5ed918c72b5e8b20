"""A ``TimeDistributed`` that is correct for variable-length time axes and never loops.

Keras 3.15's ``TimeDistributed`` maps over ``arange(batch_size)`` instead of the
time steps when the time axis is ``None`` (wrong shapes), and loops over steps in
Python when it is static (slow, and unrolled on ONNX export). For a ``Dense``
inner layer the whole wrapper is just the Dense on the last axis; for any other
inner layer we fold the time axis into the batch axis, apply it once, and unfold.
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
        inner_shape = tuple(inputs.shape[2:])
        if any(d is None for d in inner_shape):
            inner_shape = tuple(shape[2:])
        folded = ops.reshape(inputs, (-1,) + inner_shape)
        kwargs = {"training": training} if self._inner_takes_training() else {}
        outputs = self.layer(folded, **kwargs)
        out_inner = tuple(outputs.shape[1:])
        if any(d is None for d in out_inner):
            out_inner = tuple(ops.shape(outputs)[1:])
        return ops.reshape(outputs, (shape[0], shape[1]) + out_inner)

    def _inner_takes_training(self) -> bool:
        return bool(getattr(self.layer, "_call_has_training_arg", False))
