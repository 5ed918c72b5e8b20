"""Running LiteRT (.tflite) models in ai-edge-litert's interpreter, with index ranges read
from the file.

The file is checked (a regular file under ``MAX_TFLITE_FILE_BYTES`` whose flatbuffer carries
the ``TFL3`` identifier) and read once; the interpreter (which verifies the flatbuffer itself)
and graphkit's own reading of the graph see the same bytes. Inputs and outputs are the
signature's keys (``serving_default``, or the file's only signature); a file without a
signature is run by its input and output tensors' names. The runtime is an optional extra:
importing this module imports neither TensorFlow nor ai-edge-litert.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphkit.backends.base import Backend, InputSpec, TableRead, as_declared_dtype
from graphkit.backends.dataflow import MASK_WORDS
from graphkit.errors import GraphkitError, one_line
from graphkit.limits import MAX_TFLITE_FILE_BYTES

WHAT = "a LiteRT (.tflite) model"
IDENTIFIER = b"TFL3"  # the flatbuffer file identifier of TFLite's schema, at bytes 4..8
MISSING_RUNTIME = (
    "reading .tflite files needs the LiteRT runtime: pip install 'keras-graphkit[litert]'"
)
DEFAULT_SIGNATURE = "serving_default"


def check_runtime() -> None:
    """GraphkitError (one line) unless the LiteRT runtime can be imported; imports nothing
    heavy: only whether the package is there."""
    import importlib.util

    if importlib.util.find_spec("ai_edge_litert") is None:
        raise GraphkitError(MISSING_RUNTIME)


def _interpreter_class():
    """ai-edge-litert's Interpreter, imported on first use (an optional extra)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise GraphkitError(MISSING_RUNTIME) from None
    return Interpreter


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise GraphkitError(MISSING_RUNTIME) from None
    return schema_py_generated


def check_tflite_file(path: str | os.PathLike) -> Path:
    """A cheap check before TensorFlow's import: a regular file that starts like a .tflite
    flatbuffer, and the LiteRT runtime installed; the backend reads and checks it in full."""
    from graphkit.backends.onnx_backend import check_file_exists

    path = check_file_exists(path, WHAT)
    try:
        with open(path, "rb", buffering=0) as f:  # a regular file: check_file_exists said so
            head = f.read(8)
    except OSError as exc:
        raise GraphkitError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(head) < 8 or head[4:8] != IDENTIFIER:
        raise GraphkitError(
            f"{path}: not {WHAT} (no flatbuffer with the 'TFL3' identifier at bytes 4..8)"
        )
    _interpreter_class()
    return path


def read_tflite_file(path: str | os.PathLike) -> bytes:
    """The bytes of a .tflite file, or one GraphkitError saying why it is not one.

    Read through one descriptor that must be a regular file (a FIFO swapped in after the
    path's check is refused too), at most ``MAX_TFLITE_FILE_BYTES``; the flatbuffer must name
    ``TFL3`` as its identifier and its root offset must lie inside the file. The interpreter
    verifies the rest of the flatbuffer before it reads anything.
    """
    from graphkit.backends.onnx_backend import check_file_exists

    path = check_file_exists(path, WHAT)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or one_line(exc, with_type=False)
        raise GraphkitError(f"{path}: cannot read it ({reason})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise GraphkitError(f"{path}: not a regular file, not {WHAT}")
        if info.st_size > MAX_TFLITE_FILE_BYTES:
            raise GraphkitError(
                f"{path}: {info.st_size} bytes, over the {MAX_TFLITE_FILE_BYTES}-byte limit on "
                f"{WHAT} (graphkit.limits.MAX_TFLITE_FILE_BYTES: a flatbuffer's 32-bit offsets)"
            )
        data = f.read(MAX_TFLITE_FILE_BYTES + 1)
    if len(data) > MAX_TFLITE_FILE_BYTES:  # grew while being read
        raise GraphkitError(
            f"{path}: over the {MAX_TFLITE_FILE_BYTES}-byte limit on {WHAT} "
            "(graphkit.limits.MAX_TFLITE_FILE_BYTES)"
        )
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise GraphkitError(
            f"{path}: not {WHAT} (no flatbuffer with the 'TFL3' identifier at bytes 4..8)"
        )
    root = int.from_bytes(data[:4], "little")
    if root < 8 or root + 4 > len(data):
        raise GraphkitError(
            f"{path}: not {WHAT} (its root offset {root} lies outside the file: truncated?)"
        )
    return data


# TFLite tensor types graphkit can feed or read, as numpy dtype names.
_TFLITE_DTYPES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
    12: "uint64",
    15: "uint32",
    16: "uint16",
}
_HALF_TYPES = (1, 18)  # FLOAT16, BFLOAT16

# What the walk from an input to its GATHER/ONE_HOT passes through: shape changes, casts, and
# the index arithmetic Keras adds in front of a Gather (negative-index wrap: LESS, ADD,
# SELECT_V2), as for ONNX (onnx_backend._INDEX_PASSTHROUGH).
_INDEX_PASSTHROUGH = frozenset(
    {
        "CAST",
        "RESHAPE",
        "SQUEEZE",
        "EXPAND_DIMS",
        "TRANSPOSE",
        "LESS",
        "LOGICAL_NOT",
        "SELECT",
        "SELECT_V2",
        "ADD",
        "SUB",
        "MUL",
        "MAXIMUM",
        "MINIMUM",
    }
)
_MASK_OPS = frozenset({"EQUAL", "NOT_EQUAL", "GREATER"})
_NO_TABLE = "the GATHER that reads it has no constant table"
_NO_DEPTH = "the depth of the ONE_HOT that reads it is not a constant count"


@dataclass
class _Op:
    name: str  # the builtin operator's name: "GATHER", "ONE_HOT", ...
    inputs: list[int]
    outputs: list[int]
    raw: object  # the schema's Operator (for its options)


class TFLiteGraph:
    """One subgraph of a .tflite flatbuffer as graphkit reads it: tensors, operators, constants.

    Read with the schema shipped in ai-edge-litert, after the interpreter verified the buffer.
    """

    def __init__(self, data: bytes, subgraph: int = 0):
        schema = _schema()
        self.data = data
        self.model = schema.Model.GetRootAs(data, 0)
        self.subgraph = self.model.Subgraphs(subgraph)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        codes = []
        for i in range(self.model.OperatorCodesLength()):
            code = self.model.OperatorCodes(i)
            number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            codes.append(names.get(number, f"builtin {number}"))
        self.ops: list[_Op] = []
        self.consumers: dict[int, list[_Op]] = {}
        for i in range(self.subgraph.OperatorsLength()):
            raw = self.subgraph.Operators(i)
            index = raw.OpcodeIndex()
            name = codes[index] if 0 <= index < len(codes) else "?"
            op = _Op(name, _ints(raw.InputsAsNumpy()), _ints(raw.OutputsAsNumpy()), raw)
            self.ops.append(op)
            for t in op.inputs:
                self.consumers.setdefault(t, []).append(op)
        self.all_op_names = set()
        for k in range(self.model.SubgraphsLength()):
            graph = self.model.Subgraphs(k)
            for i in range(graph.OperatorsLength()):
                index = graph.Operators(i).OpcodeIndex()
                self.all_op_names.add(codes[index] if 0 <= index < len(codes) else "?")

    def tensor(self, index: int):
        if not 0 <= index < self.subgraph.TensorsLength():
            return None
        return self.subgraph.Tensors(index)

    def name(self, index: int) -> str:
        t = self.tensor(index)
        raw = t.Name() if t is not None else None
        return raw.decode("utf-8", "replace") if raw else f"tensor {index}"

    def shape(self, index: int) -> tuple[int, ...]:
        t = self.tensor(index)
        return tuple(_ints(t.ShapeAsNumpy())) if t is not None and t.ShapeLength() else ()

    def constant(self, index: int) -> np.ndarray | None:
        """The value of a constant tensor (its buffer holds data), as a read-only view of the
        file's bytes; None for activations, variables and anything whose size does not fit."""
        t = self.tensor(index)
        if t is None or t.IsVariable() or t.Type() not in _TFLITE_DTYPES:
            return None
        b = t.Buffer()
        if not 0 < b < self.model.BuffersLength():
            return None
        buf = self.model.Buffers(b)
        dtype = np.dtype(_TFLITE_DTYPES[t.Type()])
        shape = self.shape(index)
        if any(d < 0 for d in shape):
            return None
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if buf.Offset() > 1:  # a large model's buffer after the flatbuffer
            start, size = int(buf.Offset()), int(buf.Size())
            if start + size > len(self.data):
                return None
            raw = np.frombuffer(self.data, np.uint8, size, start)
        else:
            raw = buf.DataAsNumpy()
            if not isinstance(raw, np.ndarray):
                return None
        if raw.size != count * dtype.itemsize:
            return None
        return raw.view(dtype).reshape(shape)

    def options(self, op: _Op, kind: str):
        """The operator's builtin options as the schema's ``kind`` table (e.g. "GatherOptions"),
        or None where it has none of that kind."""
        schema = _schema()
        wanted = getattr(schema.BuiltinOptions, kind, None)
        if wanted is None or op.raw.BuiltinOptionsType() != wanted:
            return None
        table = op.raw.BuiltinOptions()
        if table is None:
            return None
        opts = getattr(schema, kind)()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def producer_is_constant(self, index: int) -> np.ndarray | None:
        """A constant, or a constant through DEQUANTIZE/CAST (a float16 or int8 table)."""
        value = self.constant(index)
        if value is not None:
            return value
        for op in self.ops:
            if index in op.outputs and op.name in ("DEQUANTIZE", "CAST") and op.inputs:
                return self.constant(op.inputs[0])
        return None


def _signature_subgraph(data: bytes, key: str) -> int:
    """The subgraph a signature runs (read from the flatbuffer, as the interpreter does)."""
    model = _schema().Model.GetRootAs(data, 0)
    for k in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(k)
        if (sig.SignatureKey() or b"").decode("utf-8", "replace") == key:
            return int(sig.SubgraphIndex())
    return 0


def _ints(values) -> list[int]:
    """A flatbuffer vector as ints (the schema returns 0, not an array, for an absent one)."""
    return [int(v) for v in values] if isinstance(values, np.ndarray) else []


def index_info(
    graph: TFLiteGraph, inputs: dict[str, int], unreadable: dict[str, str] | None = None
) -> dict[str, tuple[int, bool, tuple]]:
    """Vocabulary of each input (name -> tensor index) from the GATHER/ONE_HOT/EMBEDDING_LOOKUP
    that reads it through casts, reshapes and Keras' negative-index wrap.

    Input name -> (smallest vocabulary found, whether it is also compared with 0, i.e. masked,
    the tables read). A GATHER counts only where its params are a constant table (axis 0, no
    batch dims); a ONE_HOT only where its depth is a constant count.
    """
    info: dict[str, tuple[int, bool, tuple]] = {}
    for name, start in inputs.items():
        vocab, mask = None, False
        tables: list[TableRead] = []
        frontier, seen = [start], set()
        while frontier:
            t = frontier.pop()
            if t in seen:
                continue
            seen.add(t)
            for op in graph.consumers.get(t, []):
                ins = op.inputs
                if op.name == "GATHER" and len(ins) > 1 and ins[1] == t:
                    rows = _gather_rows(graph, op)
                    if rows is None:
                        if unreadable is not None:
                            unreadable.setdefault(name, _NO_TABLE)
                        continue
                    vocab = rows if vocab is None else min(vocab, rows)
                    tables.append(TableRead(graph.name(ins[0]), rows))
                elif op.name == "EMBEDDING_LOOKUP" and len(ins) > 1 and ins[0] == t:
                    table = graph.producer_is_constant(ins[1])
                    if table is not None and table.ndim >= 1:
                        rows = int(table.shape[0])
                        vocab = rows if vocab is None else min(vocab, rows)
                        tables.append(TableRead(graph.name(ins[1]), rows))
                elif op.name == "ONE_HOT" and ins and ins[0] == t:
                    depth = graph.constant(ins[1]) if len(ins) > 1 else None
                    if depth is None or depth.size != 1 or depth.dtype.kind not in "iu":
                        if unreadable is not None:
                            unreadable[name] = _NO_DEPTH
                        continue
                    d = int(depth.reshape(()))
                    if d < 1:
                        continue
                    vocab = d if vocab is None else min(vocab, d)
                    out = op.outputs[0] if op.outputs else -1
                    tables.append(TableRead(f"ONE_HOT {graph.name(out)}", d))
                elif op.name in _MASK_OPS:
                    others = [i for i in ins if i != t]
                    value = graph.constant(others[0]) if others else None
                    if value is not None and value.size and np.all(value == 0):
                        mask = True
                elif op.name in _INDEX_PASSTHROUGH:
                    frontier.extend(op.outputs)
        if vocab is not None:
            info[name] = (vocab, mask, tuple(dict.fromkeys(tables)))
    return info


def _gather_rows(graph: TFLiteGraph, op: _Op) -> int | None:
    """Rows of the constant table a GATHER reads on axis 0, or None."""
    table = graph.producer_is_constant(op.inputs[0])
    if table is None or table.ndim < 1:
        return None
    opts = graph.options(op, "GatherOptions")
    axis = int(opts.Axis()) if opts is not None else 0
    batch_dims = int(opts.BatchDims()) if opts is not None else 0
    if batch_dims != 0 or axis % table.ndim != 0:
        return None
    return int(table.shape[0])


class LiteRTBackend(Backend):
    """A .tflite file run by ai-edge-litert's interpreter on the CPU (its default threads)."""

    kind = "litert"
    compiled_runtime = True  # rounds unlike Keras: tolerances as for ONNX

    def __init__(
        self,
        path: str | os.PathLike,
        provider: str = "cpu",
        *,
        signature: str | None = None,
        num_threads: int | None = None,
    ):
        if provider != "cpu":
            raise GraphkitError(
                f"provider={provider!r}: graphkit runs .tflite files on the CPU only "
                "(LiteRT's GPU and NPU delegates are not wired in)",
                cli=f"--provider {provider}: graphkit runs .tflite files on the CPU only "
                "(LiteRT's GPU and NPU delegates are not wired in); use --provider cpu",
            )
        self.source = str(path)
        self.provider = provider
        data = read_tflite_file(path)
        Interpreter = _interpreter_class()
        try:
            interpreter = Interpreter(model_content=data, num_threads=num_threads)
        except Exception as exc:
            raise GraphkitError(
                f"{path}: LiteRT cannot load it ({one_line(exc, with_type=False)})"
            ) from exc
        self.interpreter = interpreter
        self._data = data
        try:  # the ops' own checks (operand counts, tensor indices) run here, not mid-verify
            from graphkit._tf import _stderr_fd_silenced

            with _stderr_fd_silenced():  # LiteRT's XNNPACK line
                interpreter.allocate_tensors()
        except Exception as exc:
            raise GraphkitError(
                f"{path}: LiteRT cannot prepare it ({one_line(exc, with_type=False)})"
            ) from exc
        signatures = interpreter.get_signature_list()
        self.signature = self._pick_signature(signatures, signature)
        self.notes = []
        if self.signature is not None:
            runner = interpreter.get_signature_runner(self.signature)
            ins = runner.get_input_details()
            outs = runner.get_output_details()
            subgraph = _signature_subgraph(data, self.signature)
            self._runner = runner
        else:
            try:
                interpreter.allocate_tensors()
            except Exception as exc:
                raise GraphkitError(
                    f"{path}: LiteRT cannot allocate its tensors ({one_line(exc, with_type=False)})"
                ) from exc
            ins = {d["name"]: d for d in interpreter.get_input_details()}
            outs = {d["name"]: d for d in interpreter.get_output_details()}
            if len(ins) != len(interpreter.get_input_details()) or len(outs) != len(
                interpreter.get_output_details()
            ):
                raise GraphkitError(f"{path}: no signature, and two tensors share a name")
            subgraph = 0
            self._runner = None
            self.notes.append(f"{path}: no signature; inputs and outputs go by tensor names")
        if not ins or not outs:
            raise GraphkitError(f"{path}: not a model graphkit can run (no inputs or no outputs)")
        self._in_details = ins
        self._output_keys = list(outs)  # the file's names, what ``run`` reads
        self.output_names = list(outs)  # the names verify pairs (see ``take_output_names``)
        try:
            self.graph = TFLiteGraph(data, subgraph)
        except Exception as exc:  # verified by the interpreter; an odd file still never crashes
            raise GraphkitError(
                f"{path}: graphkit cannot read its graph ({one_line(exc, with_type=False)})"
            ) from exc
        unreadable: dict[str, str] = {}
        try:
            tensors = {k: int(d["index"]) for k, d in ins.items()}
            index = index_info(self.graph, tensors, unreadable)
        except Exception as exc:  # an odd graph: no ranges, verify asks for --range
            index = {}
            unreadable = {k: f"graphkit could not read the graph ({one_line(exc)})" for k in ins}
        self.inputs = []
        for key, d in ins.items():
            dtype = _input_dtype(d, key)
            sig = d.get("shape_signature")
            dims = sig if sig is not None and len(sig) else d["shape"]
            shape = tuple(None if int(x) < 0 else int(x) for x in dims)
            spec = InputSpec(key, shape, dtype)
            if key in index:
                spec.vocab, spec.mask_zero, spec.tables = index[key]
                spec.role = "index"
            elif ("int" in dtype or dtype == "bool") and any(w in key.lower() for w in MASK_WORDS):
                spec.role = "mask"
            elif "int" in dtype:
                spec.note = unreadable.get(key, "no GATHER or ONE_HOT reads its values")
            self.inputs.append(spec)
        self.half_precision = self._uses_half()
        self.notes += self._file_notes()

    def _pick_signature(self, signatures: dict, wanted: str | None) -> str | None:
        if wanted is not None:
            if wanted not in signatures:
                raise GraphkitError(
                    f"signature {wanted!r}: the file has {sorted(signatures) or 'none'}"
                )
            return wanted
        if not signatures:
            return None
        if DEFAULT_SIGNATURE in signatures:
            return DEFAULT_SIGNATURE
        if len(signatures) == 1:
            return next(iter(signatures))
        names = ", ".join(sorted(signatures)[:8])
        message = (
            f"{self.source}: the file has {len(signatures)} signatures ({names}) and none is "
            f"{DEFAULT_SIGNATURE!r}"
        )
        raise GraphkitError(
            f"{message}: pick one with LiteRTBackend(path, signature=...)",
            cli=f"{message}: graphkit's commands run {DEFAULT_SIGNATURE!r} or a file's only "
            "signature (from Python: LiteRTBackend(path, signature=...))",
        )

    def _uses_half(self) -> bool:
        g = self.graph.subgraph
        return any(g.Tensors(i).Type() in _HALF_TYPES for i in range(g.TensorsLength()))

    def _file_notes(self) -> list[str]:
        notes = []
        g = self.graph.subgraph
        quantized = 0
        for i in range(g.TensorsLength()):
            t = g.Tensors(i)
            q = t.Quantization()
            if t.Type() in (3, 7, 9) and q is not None and q.ScaleLength():
                quantized += 1
        if quantized:
            notes.append(
                f"{self.source}: {quantized} quantized (integer) tensors: outputs carry "
                "quantization error; give --atol/--rtol for the error you accept"
            )
        ops = self.graph.all_op_names
        if "VAR_HANDLE" in ops and "ASSIGN_VARIABLE" not in ops:
            notes.append(
                f"{self.source}: reads resource variables (VAR_HANDLE) that nothing in the file "
                "assigns: the interpreter runs them uninitialized (a converter that kept the "
                "model's variables instead of freezing them)"
            )
        return notes

    @property
    def generic_output_names(self) -> bool:
        """Are the outputs named ``output_0`` .. ``output_N-1``, TensorFlow's names for a
        function's flat outputs (Keras' own ``model.export(format="litert")`` writes them)?"""
        return self._output_keys == [f"output_{i}" for i in range(len(self._output_keys))]

    def take_output_names(self, names: list[str]) -> None:
        """Call the outputs ``names`` (the other model's) from now on; the file's keys still
        say what ``run`` reads."""
        if len(names) != len(self._output_keys):
            raise GraphkitError(f"{len(names)} names for {len(self._output_keys)} outputs")
        self.output_names = list(names)

    def shape_problem(self, shapes: dict[str, tuple]) -> str | None:
        for spec in self.inputs:
            got = shapes.get(spec.name)
            if got is None:
                continue
            if len(got) != len(spec.shape):
                want = len(spec.shape)
                return f"input {spec.name!r}: rank {len(got)}, the .tflite file takes rank {want}"
            for axis, (want, have) in enumerate(zip(spec.shape, got)):
                if want is not None and have is not None and int(want) != int(have):
                    return (
                        f"input {spec.name!r}: axis {axis} is fixed to {want} in the .tflite "
                        f"file, got {have}"
                    )
        return None

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {
            s.name: as_declared_dtype(batch[s.name], s, "the .tflite file") for s in self.inputs
        }
        problem = self.shape_problem({k: v.shape for k, v in feed.items()})
        if problem:
            raise GraphkitError(problem)
        if self._runner is not None:
            out = self._runner(**feed)
            return [np.array(out[key]) for key in self._output_keys]
        it = self.interpreter
        for name, x in feed.items():
            it.resize_tensor_input(int(self._in_details[name]["index"]), list(x.shape))
        it.allocate_tensors()
        for name, x in feed.items():
            it.set_tensor(int(self._in_details[name]["index"]), x)
        it.invoke()
        outs = {d["name"]: d for d in it.get_output_details()}
        return [np.array(it.get_tensor(int(outs[key]["index"]))) for key in self._output_keys]

    def constants(self) -> list[tuple[str, np.ndarray, str | None]]:
        """The file's float constants as (name, array, role), for the weights comparison:
        a FULLY_CONNECTED's weights transposed back to Keras' (in, out) kernel layout
        (role "kernel"), a GATHER's table (role "table"), any other float constant as stored
        except a ONE_HOT's on/off values.
        Arrays are views of the file's bytes (no copy)."""
        graph, out = self.graph, []
        roles: dict[int, str] = {}
        # a float16 weight reaches its op through a DEQUANTIZE: the role is the constant's
        stored = {
            op.outputs[0]: op.inputs[0]
            for op in graph.ops
            if op.name == "DEQUANTIZE" and op.inputs and op.outputs
        }
        for op in graph.ops:
            if op.name == "FULLY_CONNECTED" and len(op.inputs) > 1:
                roles.setdefault(stored.get(op.inputs[1], op.inputs[1]), "kernel")
            elif op.name == "GATHER" and op.inputs:
                roles.setdefault(stored.get(op.inputs[0], op.inputs[0]), "table")
            elif op.name == "ONE_HOT":
                roles.update({t: "one-hot value" for t in op.inputs[2:4]})  # 1.0 and 0.0
        g = graph.subgraph
        for i in range(g.TensorsLength()):
            value = graph.constant(i)
            if value is None or value.dtype.kind != "f" or not value.size:
                continue
            role = roles.get(i)
            if role == "one-hot value":
                continue
            if role == "kernel" and value.ndim == 2:
                value = value.T
            out.append((graph.name(i), value, role))
        return out


def _input_dtype(details: dict, name: str) -> str:
    try:
        dtype = np.dtype(details["dtype"]).name
    except TypeError:
        dtype = "?"
    if dtype not in _TFLITE_DTYPES.values():
        raise GraphkitError(
            f"input {name[:80]!r}: type {dtype} is not supported (graphkit feeds float16/32/64, "
            "int8-64, uint8-64 and bool tensors to LiteRT)"
        )
    return dtype


def is_tflite_path(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".tflite"
