"""ONNX graph passes, one per module, and the registry that export, the CLI and ``graphkit rules``
loop over.

A pass is a module declaring ``NAME``, ``SUMMARY``, ``CONFLICTS`` and ``apply(model)`` (see
``base``). Adding one is that module, one line in ``registry.PASSES`` and its test in
tests/onnx_passes/. Importing this package is cheap: numpy and onnx load when a pass runs.

The floors, so that no module imports one that imports it: ``graph`` and ``base`` (facts every
pass reads), the pass modules, ``registry`` (imports the passes), ``runner``, this package.
"""

from __future__ import annotations

from graphkit.onnx_passes.base import OnnxPass, PassResult
from graphkit.onnx_passes.lower_gather import OUT_OF_RANGE_NOTE
from graphkit.onnx_passes.registry import PASSES, describe_passes
from graphkit.onnx_passes.runner import resolve_passes, run_passes

__all__ = [
    "OUT_OF_RANGE_NOTE",
    "PASSES",
    "OnnxPass",
    "PassResult",
    "describe_passes",
    "resolve_passes",
    "run_passes",
]
