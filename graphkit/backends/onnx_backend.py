"""Running ONNX models in onnxruntime, with index ranges read from the graph."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np

from graphkit.backends.base import PROVIDERS, Backend, InputSpec, TableRead, as_declared_dtype
from graphkit.backends.dataflow import MASK_WORDS
from graphkit.errors import GraphkitError, one_line
from graphkit.limits import MAX_METADATA_DIGITS, MAX_ONNX_FILE_BYTES


def check_file_exists(path: str | os.PathLike, what: str) -> Path:
    """A readable, non-empty regular file, or one GraphkitError saying what is wrong.

    ``os.stat`` follows a symlink to the file it names; a FIFO, a device or a folder is refused
    here, before anything opens it (opening a FIFO for reading waits for a writer).
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise GraphkitError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # a NUL in the name, a loop of links, no permission
        raise GraphkitError(f"{path}: cannot read it ({_os_reason(exc)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise GraphkitError(f"{path}: is a directory, not {what}")
    if not stat.S_ISREG(info.st_mode):
        raise GraphkitError(f"{path}: not a regular file (a FIFO, socket or device), not {what}")
    if info.st_size == 0:
        raise GraphkitError(f"{path}: empty file, not {what}")
    return path


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or one_line(exc, with_type=False)


def check_onnx_file(path: str | os.PathLike):
    """Load and fully check an ONNX file; one clear GraphkitError for anything wrong.

    The model's bytes are read through one descriptor that must be a regular file, parsed
    without external data, and every external tensor's file is checked by graphkit
    (``check_external_data``) before onnx's checker or onnxruntime opens anything else.
    """
    path = check_file_exists(path, "an ONNX model")
    import onnx

    data = _read_regular(path, "an ONNX model", MAX_ONNX_FILE_BYTES)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        if data[4:8] == b"TFL3":  # a LiteRT flatbuffer's identifier
            raise GraphkitError(
                f"{path}: not an ONNX model but a LiteRT (.tflite) file: name it .tflite"
            ) from exc
        raise GraphkitError(
            f"{path}: not a valid ONNX model ({one_line(exc, with_type=False)[:300]})"
        ) from exc
    del data
    _check_text_fields(model, path)
    check_external_data(model, path)
    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as exc:
        text = one_line(exc, with_type=False)
        if "external" in text.lower() or "data file" in text.lower() or "location" in text.lower():
            raise GraphkitError(f"{path}: refused external data: {text[:300]}") from exc
        raise GraphkitError(f"{path}: not a valid ONNX model ({text[:300]})") from exc
    if not model.graph.node and not model.graph.output:
        raise GraphkitError(f"{path}: not a valid ONNX model (empty graph)")
    return model


def _check_text_fields(model, path: Path) -> None:
    """Refuse a model with a string field that is not UTF-8 text.

    onnx.proto is proto2: protobuf hands such a field out as bytes, where every reader (graphkit's
    passes, onnxruntime's Python names) expects str. ``bytes`` fields (tensor data) are not text.
    """
    from google.protobuf.descriptor import FieldDescriptor

    stack = [model]
    while stack:
        message = stack.pop()
        for field, value in message.ListFields():
            repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; label before
            if repeated is None:
                repeated = field.label == FieldDescriptor.LABEL_REPEATED
            values = value if repeated else [value]
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                stack.extend(values)
            elif field.type == FieldDescriptor.TYPE_STRING and any(
                not isinstance(v, str) for v in values
            ):
                raise GraphkitError(
                    f"{path}: not a valid ONNX model (a {field.name} that is not UTF-8 text)"
                )


def _read_regular(path: Path, what: str, limit: int) -> bytes:
    """The bytes of ``path``, opened without blocking and checked to be a regular file on the
    descriptor itself (a file swapped for a FIFO after ``check_file_exists`` is refused too)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        raise GraphkitError(f"{path}: cannot read it ({_os_reason(exc)})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise GraphkitError(f"{path}: not a regular file, not {what}")
        if info.st_size > limit:
            raise GraphkitError(
                f"{path}: {info.st_size} bytes, over the {limit}-byte limit on {what} "
                "(graphkit.limits.MAX_ONNX_FILE_BYTES)"
            )
        return f.read(limit + 1)


# The keys an external-data entry may hold (onnx's ExternalDataInfo; onnxruntime refuses others).
_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})


def _all_tensors(model):
    """Every TensorProto that may point at external data: initializers, sparse initializers and
    tensor attributes of every graph, subgraph (Loop/If/Scan bodies) and function."""

    def graph_tensors(graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from node_tensors(graph.node)

    def node_tensors(nodes):
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices
                for sparse in attr.sparse_tensors:
                    yield sparse.values
                    yield sparse.indices
                if attr.HasField("g"):
                    yield from graph_tensors(attr.g)
                for sub in attr.graphs:
                    yield from graph_tensors(sub)

    yield from graph_tensors(model.graph)
    for function in model.functions:
        yield from node_tensors(function.node)
    for info in model.training_info:
        for graph in (info.initialization, info.algorithm):
            yield from graph_tensors(graph)


def check_external_data(model, path: str | os.PathLike) -> int:
    """Refuse any external tensor whose data is not a regular file, with one link, inside the
    model's folder, holding the bytes it claims. Returns the number of external tensors.

    onnx's checker skips its hard-link, containment and regular-file checks for a location
    that starts with ``#`` (issue 18), and onnxruntime does not check hard links: a hard link
    is a second name for a file anywhere on the same disk. So graphkit checks every external
    tensor itself, on the resolved path, whatever the current folder is. The model's folder
    is the folder of ``path`` as given (where onnx and onnxruntime look), resolved.
    """
    from onnx import TensorProto

    path = Path(path)
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    count = 0
    for tensor in _all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL and not len(tensor.external_data):
            continue
        if count == 0 and os.path.islink(path):
            # onnxruntime's folder option (locate.py) and onnx resolve the model differently
            raise GraphkitError(
                f"{path}: a symlink to a model with external data; give the model's real path"
            )
        count += 1
        _check_external_tensor(tensor, folder, path)
    return count


def _check_external_tensor(tensor, folder: str, path: Path) -> None:
    name = tensor.name[:80]
    where = f"{path}: initializer {name!r}: external data"
    info: dict[str, str] = {}
    for entry in tensor.external_data:
        # onnx.proto is proto2: protobuf hands out bytes for a string that is not UTF-8
        if not isinstance(entry.key, str) or not isinstance(entry.value, str):
            raise GraphkitError(f"{where}: an entry that is not UTF-8 text")
        if entry.key not in _EXTERNAL_KEYS:
            raise GraphkitError(f"{where}: unknown key {entry.key[:40]!r}")
        if entry.key in info:
            raise GraphkitError(f"{where}: key {entry.key!r} given twice")
        info[entry.key] = entry.value
    location = info.get("location", "")
    if info.get("basepath"):
        raise GraphkitError(f"{where}: a basepath entry is not supported")
    shown = location[:80]
    if not location or "\x00" in location:
        raise GraphkitError(f"{where}: location {shown!r} is empty or holds a NUL byte")
    parts = location.replace("\\", "/").split("/")
    if os.path.isabs(location) or location.startswith("\\") or ".." in parts:
        raise GraphkitError(
            f"{where}: location {shown!r} must be a relative path inside the model's folder"
        )
    offset = _decimal(info.get("offset", "0") or "0", where, "offset")
    length = _decimal(info["length"], where, "length") if "length" in info else None
    joined = os.path.join(folder, location)
    try:
        if os.path.islink(joined):
            raise GraphkitError(f"{where}: {shown!r} is a symlink (refused: it may lead anywhere)")
        real = os.path.realpath(joined)
        if os.path.commonpath([folder, real]) != folder or real == folder:
            raise GraphkitError(f"{where}: {shown!r} resolves outside the model's folder")
        st = os.lstat(real)
    except GraphkitError:
        raise
    except FileNotFoundError:
        raise GraphkitError(f"{where}: {shown!r}: no such file beside the model") from None
    except (OSError, ValueError) as exc:
        raise GraphkitError(f"{where}: {shown!r}: cannot read it ({_os_reason(exc)})") from None
    if not stat.S_ISREG(st.st_mode):
        raise GraphkitError(f"{where}: {shown!r} is not a regular file")
    if st.st_nlink != 1:
        raise GraphkitError(
            f"{where}: {shown!r} has {st.st_nlink} hard links (refused: a second name may be a "
            "file outside the model's folder; copy it)"
        )
    needed = max(length or 0, _tensor_bytes(tensor) or 0)
    if offset + needed > st.st_size or (length is None and offset > st.st_size):
        raise GraphkitError(
            f"{where}: offset {offset} + {needed} bytes runs past the end of {shown!r} "
            f"({st.st_size} bytes)"
        )


_DECIMAL = re.compile(f"[0-9]{{1,{MAX_METADATA_DIGITS}}}", re.ASCII)


def _decimal(text: str, where: str, key: str) -> int:
    """A non-negative ASCII decimal of at most MAX_METADATA_DIGITS digits, else a refusal."""
    if not _DECIMAL.fullmatch(text):
        raise GraphkitError(
            f"{where}: {key} {text[:30]!r} is not a decimal number of at most "
            f"{MAX_METADATA_DIGITS} digits (graphkit.limits.MAX_METADATA_DIGITS)"
        )
    return int(text)


def _tensor_bytes(tensor) -> int | None:
    """Bytes the tensor's dims and type call for, None where that is not fixed (strings)."""
    from onnx import helper

    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except Exception:
        return None
    if dtype.kind in "OUSV" or any(d < 0 for d in tensor.dims):
        return None
    count = 1
    for d in tensor.dims:
        count *= int(d)
    bits = {"int4": 4, "uint4": 4, "float4e2m1": 4, "int2": 2, "uint2": 2}.get(dtype.name)
    return (count * bits + 7) // 8 if bits else count * dtype.itemsize


# What the walk from a graph input to its Gather/OneHot passes through: shape changes, casts,
# and the index arithmetic Keras adds (negative-index wrapping).
_INDEX_PASSTHROUGH = frozenset(
    {
        "Cast",
        "Identity",
        "Unsqueeze",
        "Squeeze",
        "Reshape",
        "Flatten",
        "Transpose",
        "Less",
        "Not",
        "Where",
        "Add",
        "Mul",
        "Sub",
        "Max",
        "Min",
        "Clip",
    }
)


def _onnx_index_info(
    model, unreadable: dict[str, str] | None = None
) -> dict[str, tuple[int, bool, tuple]]:
    """Vocabulary of each graph input from the Gather/OneHot that reads it (through Cast & co).

    Input name -> (smallest vocabulary found, whether it is also compared with 0, i.e. masked,
    the tables read: ``TableRead`` per Gather table or OneHot).
    A fused table's extra out-of-range row does not count (``valid_rows`` in its metadata).
    Table sizes come from their dims: external data is never read. A range recorded in the
    metadata (``drop_index_guards``: the export's input contract) counts too, and is all
    there is where no Gather/OneHot is left (``--target coreml``).
    """
    from graphkit.onnx_passes.drop_index_guards import index_ranges
    from graphkit.onnx_passes.fuse_onehot import valid_rows
    from graphkit.onnx_passes.graph import GraphIndex, onehot_depth

    index = GraphIndex(model.graph)
    rows_in_use = valid_rows(model)
    contract = index_ranges(model)
    info: dict[str, tuple[int, bool, tuple]] = {}
    for gi in index.graph_inputs:
        vocab, mask = contract.get(gi.name), False
        tables: list = []
        frontier, seen = [gi.name], set()
        while frontier:
            name = frontier.pop()
            if name in seen:
                continue
            seen.add(name)
            for node in index.consumers.get(name, []):
                if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == name:
                    dims = index.constant_shape(node.input[0])
                    if dims:
                        rows = rows_in_use.get(node.input[0], dims[0])
                        if not 0 <= rows <= dims[0]:  # metadata that does not fit the table
                            rows = dims[0]
                        vocab = rows if vocab is None else min(vocab, rows)
                        tables.append(TableRead(node.input[0], int(rows)))
                elif node.op_type == "OneHot" and node.input[0] == name:
                    d = onehot_depth(index, node)
                    if d is None and unreadable is not None:
                        unreadable[gi.name] = "the depth of the OneHot that reads it is not a count"
                    if d is not None:
                        vocab = d if vocab is None else min(vocab, d)
                        tables.append(TableRead(f"OneHot {node.name or node.output[0]}", d))
                elif node.op_type in ("Equal", "NotEqual", "Greater"):
                    other = [i for i in node.input if i != name]
                    val = index.constant(other[0]) if other else None
                    if val is not None and np.all(np.asarray(val) == 0):
                        mask = True
                elif node.op_type in _INDEX_PASSTHROUGH:
                    frontier.extend(node.output)
        if vocab is not None:
            info[gi.name] = (vocab, mask, tuple(dict.fromkeys(tables)))
    return info


class OnnxBackend(Backend):
    kind = "onnx"
    compiled_runtime = True

    def __init__(self, path: str | os.PathLike, provider: str = "cpu", model=None):
        if provider not in PROVIDERS:
            raise GraphkitError(f"--provider {provider!r}: expected one of: {', '.join(PROVIDERS)}")
        self.source = str(path)
        proto = model if model is not None else check_onnx_file(path)
        import onnxruntime as ort

        wanted = PROVIDERS[provider]
        available = ort.get_available_providers()
        if wanted not in available:
            raise GraphkitError(
                f"{wanted} is not available in this onnxruntime ({', '.join(available)}); "
                "install the gpu extra: pip uninstall onnxruntime && pip install 'keras-graphkit[gpu]'"
            )
        # (errors come back as exceptions; level 4 keeps its C++ log lines off stderr)
        options = ort.SessionOptions()
        options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=[wanted])
        except Exception as exc:
            raise GraphkitError(
                f"{path}: onnxruntime cannot load it ({one_line(exc, with_type=False)})"
            ) from exc
        if provider == "cuda" and wanted not in self.session.get_providers():
            raise GraphkitError(f"{path}: onnxruntime did not enable {wanted} for this session")
        self.provider = provider
        unreadable: dict[str, str] = {}
        index = _onnx_index_info(proto, unreadable)
        self.inputs = []
        for i in self.session.get_inputs():
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            dtype = _ort_dtype(i.type, i.name)
            spec = InputSpec(i.name, shape, dtype)
            if i.name in index:
                spec.vocab, spec.mask_zero, spec.tables = index[i.name]
                spec.role = "index"
            elif ("int" in dtype or dtype == "bool") and any(
                w in i.name.lower() for w in MASK_WORDS
            ):
                spec.role = "mask"
            elif "int" in dtype:
                spec.note = unreadable.get(i.name, "no Gather or OneHot reads its values")
            self.inputs.append(spec)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.half_precision = _onnx_uses_half(proto)
        self.notes = []

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {
            s.name: batch[s.name]
            if s.dtype == "string"
            else as_declared_dtype(batch[s.name], s, "the ONNX model")
            for s in self.inputs
        }
        return list(self.session.run(None, feed))


def _onnx_uses_half(proto) -> bool:
    from onnx import TensorProto

    half = {TensorProto.FLOAT16, TensorProto.BFLOAT16}
    if any(t.data_type in half for t in proto.graph.initializer):
        return True
    for node in proto.graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i in half:
                    return True
    return False


# onnxruntime's type strings that graphkit can feed, as numpy dtype names ("string": str).
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _ort_dtype(type_str: str, name: str = "?") -> str:
    """The numpy dtype name of an onnxruntime input type; any other type (bfloat16, float8,
    int4, complex, sequences, maps, optionals) is refused in one line."""
    dtype = _ORT_DTYPES.get(type_str)
    if dtype is None:
        raise GraphkitError(
            f"input {name[:80]!r}: type {type_str[:60]} is not supported (graphkit feeds "
            "float16/32/64, int8-64, uint8-64, bool and string tensors)"
        )
    return dtype
