"""Where ``export_onnx`` lived before export became stages (``graphkit.export``): kept so
that code importing ``graphkit.onnx_export`` goes on working."""

from __future__ import annotations

from graphkit.export.onnx import (
    DEFAULT_OPSET,
    VERIFY_SAMPLES,
    _rename_outputs,
    check_export_options,
    check_proto,
    default_onnx_path,
    export_onnx,
    to_onnx_proto,
    trace,
)
from graphkit.export.report import ExportReport, NotEquivalentError

__all__ = [
    "DEFAULT_OPSET",
    "VERIFY_SAMPLES",
    "ExportReport",
    "NotEquivalentError",
    "_rename_outputs",
    "check_export_options",
    "check_proto",
    "default_onnx_path",
    "export_onnx",
    "to_onnx_proto",
    "trace",
]
