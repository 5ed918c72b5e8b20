"""graphkit's own Keras layers, registered as ``graphkit>OneHot`` and ``graphkit>TimeDistributed``."""

from __future__ import annotations

from graphkit.layers.one_hot import OneHot
from graphkit.layers.time_distributed import TimeDistributed

__all__ = ["OneHot", "TimeDistributed"]
