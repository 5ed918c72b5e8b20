"""The registry of ONNX passes, by name, in the order ``graphkit rules`` lists them.

Above every pass module (it imports them) and below the runner and the package, which read it:
no pass module imports it back.
"""

from __future__ import annotations

from graphkit.onnx_passes import (
    drop_index_guards,
    fix_shapes,
    fuse_onehot,
    gather_nd,
    int32_indices,
    lower_gather,
    onehot_arithmetic,
)
from graphkit.onnx_passes.base import OnnxPass

PASSES: dict[str, OnnxPass] = {
    p.NAME: p
    for p in (
        fuse_onehot,
        lower_gather,
        drop_index_guards,
        int32_indices,
        gather_nd,
        onehot_arithmetic,
        fix_shapes,
    )
}


def describe_passes() -> list[dict[str, str]]:
    """Every registered pass as ``{"name", "summary"}``, in registry order."""
    return [{"name": name, "summary": p.SUMMARY} for name, p in PASSES.items()]
