"""Import TensorFlow/Keras lazily and, for the CLI, quietly."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings


@contextlib.contextmanager
def _stderr_fd_silenced():
    """Silence file descriptor 2: absl logs written before logging is set up bypass Python."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with their start-up log noise suppressed (CLI use)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    with _stderr_fd_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        # Device discovery logs (cuInit failures on CPU-only machines) happen lazily:
        # trigger it now, while fd 2 is silenced.
        tf.config.list_physical_devices()
    tf.get_logger().setLevel(logging.ERROR)
    with contextlib.suppress(Exception):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    warnings.filterwarnings("ignore", module=r"keras(\..*)?$")
    warnings.filterwarnings("ignore", module=r"tensorflow(\..*)?$")
    warnings.filterwarnings("ignore", module=r"tf2onnx(\..*)?$")
