"""Export as stages: load -> repair -> inputs -> trace -> format writer -> passes -> atomic
write -> verify -> report (``graphkit.export.stages``). One writer module per format:
``graphkit.export.onnx`` (tf2onnx, onnxruntime) and ``graphkit.export.litert`` (TensorFlow's
TFLite converter, the LiteRT runtime). Importing this package imports no TensorFlow."""

from __future__ import annotations

from graphkit.export.litert import check_litert_options, export_litert
from graphkit.export.onnx import check_export_options, export_onnx
from graphkit.export.report import ExportReport, NotEquivalentError

__all__ = [
    "ExportReport",
    "NotEquivalentError",
    "check_export_options",
    "check_litert_options",
    "export_litert",
    "export_onnx",
]
