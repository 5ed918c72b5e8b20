"""graphkit's own Keras layers, registered as ``graphkit>OneHot``, ``graphkit>TimeDistributed``
and ``graphkit>TokenSum``."""

from __future__ import annotations

from graphkit.layers.one_hot import OneHot
from graphkit.layers.time_distributed import TimeDistributed
from graphkit.layers.token_sum import TokenSum

__all__ = ["OneHot", "TimeDistributed", "TokenSum"]
