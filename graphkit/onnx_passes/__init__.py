"""ONNX graph passes, one per module: each edits a ModelProto in place and reports what it did."""

from graphkit.onnx_passes.fuse_onehot import PassResult, fuse_onehot
from graphkit.onnx_passes.lower_gather import OUT_OF_RANGE_NOTE, lower_gather

PASSES = {"fuse_onehot": fuse_onehot, "lower_gather": lower_gather}

__all__ = ["OUT_OF_RANGE_NOTE", "PASSES", "PassResult", "fuse_onehot", "lower_gather"]
