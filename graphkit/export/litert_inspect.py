"""What a LiteRT (.tflite) file holds, and whether the GPU delegate takes its ops.

``read_ops`` lists the main subgraph's operators from the flatbuffer. ``gpu_delegate`` gives two
verdicts side by side: TensorFlow's own Analyzer (``tf.lite.experimental.Analyzer.analyze(...,
gpu_compatibility=True)``), whose printed report we capture and parse, and graphkit's op check,
a table of the ops that TensorFlow's ``tensorflow/lite/tools/versioning/gpu_compatibility.cc``
accepts. Why both: TensorFlow 2.21's pip build of the Analyzer says "looks compatible" for models
with TOPK_V2, UNIQUE, SEGMENT_SUM or ARG_MAX, ops that the same source file rejects ("Not
supported op"), so its verdict alone cannot be trusted. Either verdict is a floor, not a device
test: the delegate can still refuse or fall back at run time.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphkit.errors import GraphkitError

# The source of the table below: tensorflow/tensorflow, tensorflow/lite/tools/versioning/
# gpu_compatibility.cc at commit 03a5e4e19a9c8200e13c85f1c637877fdf589be6 (read 2026-12-06),
# the switch in CheckGpuDelegateCompatibility(op_sig, flags). Offline checks there run with
# kEnhancedBroadcast, so ADD/MUL broadcasting is numpy's rule.
GPU_RULES_SOURCE = (
    "tensorflow/lite/tools/versioning/gpu_compatibility.cc "
    "@ 03a5e4e19a9c8200e13c85f1c637877fdf589be6"
)

_FLOATS = ("FLOAT32", "FLOAT16")
_OK_ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGMOID")


# --- reading the flatbuffer ----------------------------------------------------------------


def _schema() -> Any:
    """The generated flatbuffer schema module: ai-edge-litert's if installed, else TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # the optional runtime is missing: TensorFlow ships the same schema
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def _enum_names(enum_class: type) -> dict[int, str]:
    return {
        v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)
    }


@dataclass(frozen=True)
class TensorFact:
    """What the GPU rules read of one operand: its type, static shape, and whether it is a constant."""

    type: str  # TensorType name: FLOAT32, INT32, BOOL...
    dims: tuple[int, ...]
    is_const: bool


@dataclass(frozen=True)
class OpFact:
    """One operator of the main subgraph: its name, operands (None: an omitted optional input)
    and builtin options (field name -> value, empty for options-free and custom ops)."""

    index: int
    name: str
    inputs: tuple[TensorFact | None, ...]
    outputs: tuple[TensorFact, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def runtime_inputs(self) -> int:
        """Inputs that are neither constants nor omitted (the source's GetNumberOfRuntimeInputs)."""
        return sum(1 for t in self.inputs if t is not None and not t.is_const)

    @property
    def const_inputs(self) -> int:
        return sum(1 for t in self.inputs if t is not None and t.is_const)


def _model(data: bytes) -> tuple[Any, Any]:
    """The flatbuffer's root Model and the schema module; GraphkitError when it is not a .tflite."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise GraphkitError(f"expected the bytes of a .tflite file, got {type(data).__name__}")
    data = bytes(data)
    schema = _schema()
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise GraphkitError(
            f"not a LiteRT (.tflite) model: {len(data)} bytes without the TFL3 file identifier"
        )
    try:
        model = schema.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise GraphkitError("not a usable LiteRT (.tflite) model: it has no subgraph")
        model.Subgraphs(0).OperatorsLength()
    except GraphkitError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer: offsets point nowhere
        raise GraphkitError(f"not a readable LiteRT (.tflite) model: {exc}") from None
    return model, schema


def read_op_facts(data: bytes) -> list[OpFact]:
    """The main subgraph's operators, in order, with the operand facts the GPU rules need."""
    model, schema = _model(data)
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    try:
        graph = model.Subgraphs(0)
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]

        def tensor(i: int) -> TensorFact | None:
            if i < 0:
                return None
            t = graph.Tensors(i)
            buffer = model.Buffers(t.Buffer()) if 0 < t.Buffer() < model.BuffersLength() else None
            # Data inline, or (models over 2 GB) at an offset past the flatbuffer.
            const = buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)
            dims = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            return TensorFact(type_names.get(t.Type(), str(t.Type())), dims, const)

        facts = []
        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            code = codes[op.OpcodeIndex()]
            # The schema kept an int8 field for the first 127 ops; the real code is the larger.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM:
                raw = code.CustomCode()
                name = raw.decode("utf-8", "replace") if raw else "CUSTOM"
                options: dict[str, Any] = {}
            else:
                name = op_names.get(builtin, f"BUILTIN_{builtin}")
                unpacked = schema.OperatorT.InitFromObj(op).builtinOptions
                options = dict(vars(unpacked)) if unpacked is not None else {}
            ins = tuple(tensor(int(i)) for i in (op.InputsAsNumpy() if op.InputsLength() else ()))
            outs = tuple(
                t
                for t in (
                    tensor(int(i)) for i in (op.OutputsAsNumpy() if op.OutputsLength() else ())
                )
                if t is not None
            )
            facts.append(OpFact(j, name, ins, outs, options))
    except Exception as exc:  # offsets inside a corrupt file
        raise GraphkitError(f"not a readable LiteRT (.tflite) model: {exc}") from None
    return facts


def read_ops(data: bytes) -> list[str]:
    """The builtin op names of the main subgraph's operators in order (custom ops by their name)."""
    return [f.name for f in read_op_facts(data)]


# --- graphkit's op check: the ops gpu_compatibility.cc accepts ---------------------------------


def _activation(op: OpFact) -> str | None:
    names = _enum_names(_schema().ActivationFunctionType)
    act = op.options.get("fusedActivationFunction")
    if act is None:
        return None
    name = names.get(act, str(act))
    return None if name in _OK_ACTIVATIONS else f"fused activation {name} not supported"


def _io(runtime: int, outputs: int) -> Callable[[OpFact], str | None]:
    def check(op: OpFact) -> str | None:
        if op.runtime_inputs != runtime:
            return f"expects {runtime} runtime input(s), has {op.runtime_inputs}"
        if len(op.outputs) != outputs:
            return f"expects {outputs} output(s), has {len(op.outputs)}"
        return None

    return check


def _one_or_two_operands(op: OpFact) -> str | None:
    """Two-argument elementwise ops: two runtime operands, or one runtime and one constant."""
    if len(op.outputs) != 1 or (op.runtime_inputs, op.const_inputs) not in ((2, 0), (1, 1)):
        return "Op can only handle 1 or 2 operand(s)"
    return _activation(op)


def _one_operand(op: OpFact) -> str | None:
    if op.runtime_inputs != 1 or op.const_inputs != 0 or len(op.outputs) != 1:
        return "expects 1 runtime input, no constant, 1 output"
    return None


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b)))


def _add(op: OpFact) -> str | None:
    if len(op.inputs) != 2 or None in op.inputs:
        return "ADD requires two input tensors"
    a, b = op.inputs[0].dims, op.inputs[1].dims  # type: ignore[union-attr]
    if len(a) > 1 and len(b) > 1 and len(a) != len(b) and not _broadcastable(a, b):
        return f"Doesn't support broadcasting - input0: {list(a)}, input1: {list(b)}"
    return None


def _mul(op: OpFact) -> str | None:
    if len(op.inputs) != 2 or None in op.inputs:
        return "MUL requires two input tensors"
    a, b = op.inputs[0].dims, op.inputs[1].dims  # type: ignore[union-attr]
    if len(a) == len(b):
        # An outer-product-like MUL (each input smaller somewhere) is refused.
        if any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
            return "MUL requires one tensor that not less than second in all dimensions"
    elif len(a) > 1 and len(b) > 1 and not _broadcastable(a, b):
        return f"Doesn't support broadcasting - input0: {list(a)}, input1: {list(b)}"
    return _activation(op)


def _cast(op: OpFact) -> str | None:
    problem = _io(1, 1)(op)
    if problem:
        return problem
    src, dst = op.inputs[0].type, op.outputs[0].type  # type: ignore[union-attr]
    if (
        (src == "BOOL" and dst in _FLOATS)
        or (src in _FLOATS and dst == "BOOL")
        or (src in ("FLOAT32", "INT32") and dst in ("FLOAT32", "INT32"))
    ):
        return None
    return f"Not supported Cast case. Input type: {src} and output type: {dst}"


def _gather(op: OpFact) -> str | None:
    if len(op.outputs) != 1 or (op.runtime_inputs, op.const_inputs) not in ((2, 0), (1, 1)):
        return "Op can only handle 1 or 2 operand(s)"
    params, indices = op.inputs[0], op.inputs[1]
    if params is not None and params.type == "INT32":
        return "Does not accept INT32 input"
    if indices is None or len(indices.dims) != 1:
        return "Only support 1D indices"
    return None if indices.type == "INT32" else "Only accept INT32 indices"


def _one_hot(op: OpFact) -> str | None:
    why = (
        "Indices must be int32 type, on/off tensors must be constant, scalar, float type, "
        "axis must be -1 or last dim"
    )
    if len(op.inputs) != 4 or None in op.inputs:
        return "Expects 4 inputs and 1 output"
    indices, on, off = op.inputs[0], op.inputs[2], op.inputs[3]
    if indices.type != "INT32":  # type: ignore[union-attr]
        return why
    dims = indices.dims  # type: ignore[union-attr]
    axis = op.options.get("axis", -1)
    # The source compares axis with the size of the last index dimension (as written there).
    if axis != -1 and (not dims or axis != dims[-1]):
        return why
    for i, d in enumerate(dims[:-1]):  # only batch (rank > 3) and the last axis may exceed 1
        if not (len(dims) > 3 and i == 0) and d != 1:
            return f"Unsupported non-singleton dim at {i} (indices shape {list(dims)})"
    for t in (on, off):
        if t.type != "FLOAT32" or not t.is_const or len(t.dims) > 1:  # type: ignore[union-attr]
            return why
        if t.dims and t.dims[0] > 1:  # type: ignore[union-attr]
            return why
    return None


def _select(op: OpFact) -> str | None:
    why = (
        "Cond must be float or bool type, if, else tensors must be float and either be same "
        "the shape as output or constant, scalar"
    )
    if len(op.inputs) != 3 or None in op.inputs or len(op.outputs) != 1:
        return "Expected 3 inputs and 1 output"
    cond, yes, no = op.inputs  # type: ignore[misc]
    if cond.type not in ("BOOL", *_FLOATS) or yes.type not in _FLOATS or no.type not in _FLOATS:
        return why
    out = op.outputs[0].dims
    for t, which in ((yes, "if"), (no, "else")):
        if t.dims and t.dims != out and (len(t.dims) > 1 or t.dims[0] > 1):
            return why
        if t.is_const and len(t.dims) == 2:
            return f"2-D {which} tensor only supported if constant"  # the source's wording
    return None


def _fully_connected(op: OpFact) -> str | None:
    fmt = op.options.get("weightsFormat", 0)
    if fmt:
        return f"Unsupported FullyConnected weights format: {fmt}"
    if op.runtime_inputs > 2:
        return "FullyConnected doesn't support more than 2 runtime inputs"
    if op.inputs and op.inputs[0] is not None and op.inputs[0].is_const:
        return "FullyConnected doesn't support constant input"
    if op.options.get("keepNumDims") and op.inputs[0] and op.outputs:
        if len(op.inputs[0].dims) != len(op.outputs[0].dims):
            return "Input and output dimensions different and FullyConnected doesn't support keep_num_dims"
    return None


def _axes_int32_const(op: OpFact) -> str | None:
    if len(op.inputs) < 2 or op.inputs[1] is None:
        return "expects constant axes"
    axes = op.inputs[1]
    if not axes.is_const:
        return f"{op.name} is only supported with constant axes"
    return (
        None
        if axes.type == "INT32"
        else f"{op.name} supports int32 tensor for axes, got {axes.type}"
    )


def _mean(op: OpFact) -> str | None:
    if (op.runtime_inputs, op.const_inputs, len(op.outputs)) != (1, 1, 1):
        return "expects 1 runtime input, 1 constant (axes), 1 output"
    return _axes_int32_const(op)


def _reduce(op: OpFact) -> str | None:
    return _io(1, 1)(op) or _axes_int32_const(op)


def _softmax(op: OpFact) -> str | None:
    return None if op.options.get("beta", 1.0) == 1.0 else "Softmax.beta != 1 is not supported"


def _strided_slice(op: OpFact) -> str | None:
    for mask, what in (
        ("ellipsisMask", "ellipsis_mask"),
        ("newAxisMask", "new_axis_mask"),
        ("shrinkAxisMask", "shrink_axis_mask"),
    ):
        if op.options.get(mask):
            return f"Slice does not support {what}"
    if len(op.inputs) < 4:
        return "STRIDED_SLICE requires 4 inputs"
    rank = len(op.inputs[0].dims) if op.inputs[0] else 0
    return (
        None
        if rank in (3, 4)
        else f"STRIDED_SLICE supports 3 or 4 dimensional tensors only, got {rank}"
    )


def _slice(op: OpFact) -> str | None:
    if len(op.inputs) < 3:
        return "SLICE requires 3 inputs"
    rank = len(op.inputs[0].dims) if op.inputs[0] else 0
    return None if rank in (3, 4) else f"SLICE supports 3 or 4 dimensional tensors only, got {rank}"


def _cumsum(op: OpFact) -> str | None:
    if len(op.inputs) != 2 or None in op.inputs or not op.outputs:
        return "Expects 2 inputs and 1 output"
    x, axis = op.inputs  # type: ignore[misc]
    if (
        x.type not in _FLOATS
        or op.outputs[0].type != x.type
        or axis.type != "INT32"
        or not axis.is_const
    ):
        return "Input/output must be float type and indices must be constant int32 type"
    return None


def _add_n(op: OpFact) -> str | None:
    return None if len(op.inputs) == 2 else "ADD_N only supports 2 inputs"


def _embedding_lookup(op: OpFact) -> str | None:
    if len(op.inputs) != 2 or None in op.inputs or len(op.outputs) != 1:
        return "expects 2 inputs and 1 output"
    ids, table = op.inputs  # type: ignore[misc]
    out = op.outputs[0]
    if len(ids.dims) != 1:
        return f"Expected 1D, but got {len(ids.dims)}D input #0"
    if len(table.dims) < 2 or len(table.dims) != len(out.dims) or table.dims[1:] != out.dims[1:]:
        return "table and output shapes do not match"
    return None if table.type in ("INT8", "INT4", "FLOAT32") else f"table type {table.type}"


# op -> None (accepted by name: the source checks nothing more, or graphkit does not implement
# what it checks; see CHECKED_BY_NAME_ONLY) or graphkit's implementation of the source's check.
GPU_DELEGATE_OPS: dict[str, Callable[[OpFact], str | None] | None] = {
    "ADD": _add,
    "ADD_N": _add_n,
    "AVERAGE_POOL_2D": None,
    "BATCH_MATMUL": _io(2, 1),  # the source: 2 inputs of any kind and 1 output
    "CAST": _cast,
    "CONCATENATION": None,
    "CONV_2D": None,
    "CUMSUM": _cumsum,
    "DENSIFY": _io(0, 1),
    "DEPTHWISE_CONV_2D": None,
    "DEPTH_TO_SPACE": None,
    "DEQUANTIZE": None,
    "EMBEDDING_LOOKUP": _embedding_lookup,
    "DYNAMIC_UPDATE_SLICE": None,
    "FULLY_CONNECTED": _fully_connected,
    "GATHER": _gather,
    "HARD_SWISH": _io(1, 1),
    "LSTM": None,
    "MAX_POOL_2D": None,
    "MEAN": _mean,
    "MUL": _mul,
    "PACK": None,
    "ONE_HOT": _one_hot,
    "QUANTIZE": _io(1, 1),
    "RELU_N1_TO_1": None,
    "PRELU": None,
    "RESHAPE": _io(1, 1),
    "SELECT": _select,
    "SELECT_V2": _select,
    "SLICE": _slice,
    "SOFTMAX": _softmax,
    "SPACE_TO_DEPTH": None,
    "SPLIT": None,
    "SPLIT_V": None,
    "STRIDED_SLICE": _strided_slice,
    "TILE": _io(1, 1),
    "TRANSPOSE": _io(1, 1),
    "TRANSPOSE_CONV": None,
    "RESIZE_BILINEAR": None,
    "RESIZE_NEAREST_NEIGHBOR": _io(1, 1),
    "RELU": None,
    "RELU6": None,
    "LEAKY_RELU": None,
    "REDUCE_MAX": _reduce,
    "REDUCE_MIN": _reduce,
    "REDUCE_PROD": _reduce,
    "SUM": _reduce,
    "PAD": None,
    "PADV2": None,
    "MIRROR_PAD": None,
    **{
        name: _one_operand
        for name in (
            "ABS",
            "CEIL",
            "COS",
            "ELU",
            "EXP",
            "FLOOR",
            "GELU",
            "LOG",
            "LOGISTIC",
            "NEG",
            "RSQRT",
            "SIGN",
            "SIN",
            "SQRT",
            "SQUARE",
            "TANH",
        )
    },  # fmt: skip
    **{
        name: _one_or_two_operands
        for name in (
            "ATAN2",
            "DIV",
            "EQUAL",
            "FLOOR_DIV",
            "FLOOR_MOD",
            "GREATER",
            "GREATER_EQUAL",
            "LOGICAL_AND",
            "LESS",
            "LESS_EQUAL",
            "MAXIMUM",
            "MINIMUM",
            "NOT_EQUAL",
            "POW",
            "SQUARED_DIFFERENCE",
            "SUB",
        )
    },  # fmt: skip
    "STABLEHLO_CLAMP": None,
}

# Ops whose check in the source graphkit does not implement (kernel/stride/dilation values,
# depth multipliers, LSTM kernel types, padding shapes, resize flags, clamp shapes...): accepted
# by name only. Ops the source accepts unconditionally are not listed here.
CHECKED_BY_NAME_ONLY = frozenset(
    {
        "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
        "DEQUANTIZE", "DYNAMIC_UPDATE_SLICE", "LSTM", "MAX_POOL_2D", "SPACE_TO_DEPTH",
        "TRANSPOSE_CONV", "RESIZE_BILINEAR", "PAD", "PADV2", "MIRROR_PAD", "STABLEHLO_CLAMP",
    }
)  # fmt: skip

# Custom ops the source accepts (each with conditions graphkit checks by name only).
GPU_DELEGATE_CUSTOM_OPS = frozenset(
    {"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"}
)


def _builtin_names() -> frozenset[str]:
    return frozenset(_enum_names(_schema().BuiltinOperator).values())


def check_op(op: OpFact) -> str | None:
    """Why the GPU delegate's rules refuse ``op``, or None when they take it."""
    if op.name not in _builtin_names():  # a custom op, named by its custom code
        if op.name in GPU_DELEGATE_CUSTOM_OPS:
            return None
        return f"Not supported custom op {op.name}"
    if op.name not in GPU_DELEGATE_OPS:
        return "Not supported op"
    rule = GPU_DELEGATE_OPS[op.name]
    return rule(op) if rule is not None else None


# --- the verdict --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpIssue:
    """One op refused for one reason, with how many nodes and which."""

    op: str
    reason: str
    nodes: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.nodes)

    def format(self) -> str:
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.op}{times} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "reason": self.reason,
            "count": self.count,
            "nodes": list(self.nodes),
        }


def _group(found: list[tuple[int, str, str]]) -> tuple[OpIssue, ...]:
    groups: dict[tuple[str, str], list[int]] = {}
    for node, op, reason in found:
        groups.setdefault((op, reason), []).append(node)
    return tuple(OpIssue(op, reason, tuple(nodes)) for (op, reason), nodes in groups.items())


@dataclass(frozen=True)
class GpuDelegateVerdict:
    """The Analyzer's GPU-delegate verdict and graphkit's op check, side by side.

    ``analyzer`` is "compatible", "incompatible" or "unavailable" (the Analyzer raised or printed
    neither verdict; ``analyzer_note`` says why). Both are floors, not a device test.
    """

    analyzer: str
    analyzer_issues: tuple[OpIssue, ...]
    analyzer_note: str
    ops: tuple[str, ...]
    issues: tuple[OpIssue, ...]
    by_name_only: tuple[str, ...]

    @property
    def op_check_passes(self) -> bool:
        return not self.issues

    @property
    def compatible(self) -> bool:
        """Neither verdict names a problem (a floor: the delegate may still refuse at run time)."""
        return self.op_check_passes and self.analyzer != "incompatible"

    @property
    def agree(self) -> bool:
        return self.analyzer == ("compatible" if self.op_check_passes else "incompatible")

    def format(self) -> str:
        """One line: the Analyzer's verdict, the op check's, and where they disagree."""
        if self.analyzer == "unavailable":
            said = f"Analyzer unavailable ({self.analyzer_note})"
        else:
            said = f"Analyzer says {self.analyzer}"
            if self.analyzer_issues:
                said += ": " + ", ".join(i.format() for i in self.analyzer_issues)
        bad = sum(i.count for i in self.issues)
        check = "graphkit's op check (TF gpu_compatibility.cc by op): "
        if self.issues:
            check += f"{bad} of {len(self.ops)} ops not supported: " + ", ".join(
                i.format() for i in self.issues
            )
        else:
            check += f"all {len(self.ops)} ops supported"
        if self.by_name_only:
            check += f" ({', '.join(self.by_name_only)} checked by name only)"
        line = f"GPU delegate: {said}; {check}"
        if self.analyzer != "unavailable" and not self.agree:
            line += "; the two disagree: " + (
                "the Analyzer passes ops that gpu_compatibility.cc refuses"
                if self.analyzer == "compatible"
                else "the Analyzer refuses ops that the op check takes"
            )
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "compatible": self.compatible,
            "agree": self.agree,
            "analyzer": {
                "verdict": self.analyzer,
                "note": self.analyzer_note,
                "incompatible_ops": [i.to_dict() for i in self.analyzer_issues],
            },
            "op_check": {
                "source": GPU_RULES_SOURCE,
                "ops": len(self.ops),
                "supported": self.op_check_passes,
                "incompatible_ops": [i.to_dict() for i in self.issues],
                "checked_by_name_only": list(self.by_name_only),
            },
            "note": "a floor, not a device test",
        }


_OP_LINE = re.compile(r"^\s*Op#(\d+) (\S+?)\(")
_SUBGRAPH_LINE = re.compile(r"^Subgraph#(\d+)")
_WARNING = "GPU COMPATIBILITY WARNING:"


def parse_analyzer(text: str) -> tuple[str, tuple[OpIssue, ...], str]:
    """(verdict, the ops it names with their messages, its runtime-version line) from the
    Analyzer's printed report. Warnings of subgraphs other than the main one are named
    ``Subgraph#i/OP``."""
    found: list[tuple[int, str, str]] = []
    subgraph, last_op = 0, None
    verdict, note = "unavailable", "the Analyzer printed no GPU verdict"
    for line in text.splitlines():
        if m := _SUBGRAPH_LINE.match(line):
            subgraph, last_op = int(m[1]), None
        elif m := _OP_LINE.match(line):
            last_op = (int(m[1]), m[2])
        elif line.startswith(_WARNING):
            message = line[len(_WARNING) :].strip()
            if message.startswith("Subgraph#"):  # the subgraph's summary line
                verdict, note = "incompatible", message
            elif last_op is not None:
                name = last_op[1] if subgraph == 0 else f"Subgraph#{subgraph}/{last_op[1]}"
                found.append((last_op[0], name, message.rstrip(".")))
        elif "looks compatible with GPU delegate" in line:
            verdict, note = "compatible", line.strip()
        elif "not compatible with GPU delegate" in line and verdict != "incompatible":
            verdict, note = "incompatible", line.strip()
    if found and verdict != "incompatible":
        verdict = "incompatible"
    return verdict, _group(found), note


def run_analyzer(data: bytes) -> str:
    """The Analyzer's report as text. It prints with Python's print: capture it so that nothing
    reaches the user's terminal."""
    from graphkit._tf import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(model_content=bytes(data), gpu_compatibility=True)
    return buffer.getvalue()


def gpu_delegate(data: bytes) -> GpuDelegateVerdict:
    """The GPU-delegate verdict for a .tflite model: the Analyzer's and graphkit's op check."""
    facts = read_op_facts(data)  # bad bytes: GraphkitError before the Analyzer sees them
    found = [(f.index, f.name, why) for f in facts if (why := check_op(f)) is not None]
    by_name = tuple(sorted({f.name for f in facts} & CHECKED_BY_NAME_ONLY))
    try:
        verdict, named, note = parse_analyzer(run_analyzer(data))
    except Exception as exc:  # the Analyzer is experimental: its failure must not lose the op check
        verdict, named, note = "unavailable", (), f"{type(exc).__name__}: {exc}".splitlines()[0]
    return GpuDelegateVerdict(
        analyzer=verdict,
        analyzer_issues=named,
        analyzer_note=note,
        ops=tuple(f.name for f in facts),
        issues=_group(found),
        by_name_only=by_name,
    )
