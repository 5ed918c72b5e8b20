"""ONNX graph passes, one per module, and the registry that export, the CLI and ``graphkit rules``
loop over.

A pass is a module declaring ``NAME``, ``SUMMARY``, ``CONFLICTS`` and ``apply(model)`` (see
``base``). Adding one is that module, one line in ``PASSES`` and its test in
tests/onnx_passes/. Importing this package is cheap: numpy and onnx load when a pass runs.
"""

from __future__ import annotations

from graphkit.onnx_passes import (
    drop_index_guards,
    fix_shapes,
    fuse_onehot,
    int32_indices,
    lower_gather,
    onehot_arithmetic,
)
from graphkit.onnx_passes.base import OnnxPass, PassResult, resolve_passes, run_passes
from graphkit.onnx_passes.lower_gather import OUT_OF_RANGE_NOTE

PASSES: dict[str, OnnxPass] = {
    p.NAME: p
    for p in (
        fuse_onehot,
        lower_gather,
        drop_index_guards,
        int32_indices,
        onehot_arithmetic,
        fix_shapes,
    )
}


def describe_passes() -> list[dict[str, str]]:
    """Every registered pass as ``{"name", "summary"}``, in registry order."""
    return [{"name": name, "summary": p.SUMMARY} for name, p in PASSES.items()]


__all__ = [
    "OUT_OF_RANGE_NOTE",
    "PASSES",
    "OnnxPass",
    "PassResult",
    "describe_passes",
    "resolve_passes",
    "run_passes",
]
