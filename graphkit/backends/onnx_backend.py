"""Running ONNX models in onnxruntime, with index ranges read from the graph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from graphkit.backends.base import PROVIDERS, Backend, InputSpec, TableRead
from graphkit.backends.dataflow import MASK_WORDS
from graphkit.errors import GraphkitError, one_line


def check_file_exists(path: str | os.PathLike, what: str) -> Path:
    """A readable, non-empty regular file, or one GraphkitError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise GraphkitError(f"{path}: no such file")
    if path.is_dir():
        raise GraphkitError(f"{path}: is a directory, not {what}")
    if path.stat().st_size == 0:
        raise GraphkitError(f"{path}: empty file, not {what}")
    return path


def check_onnx_file(path: str | os.PathLike):
    """Load and fully check an ONNX file; one clear GraphkitError for anything wrong."""
    path = check_file_exists(path, "an ONNX model")
    import onnx

    try:
        # Checks external-data locations too: refuses paths outside the model's folder.
        onnx.checker.check_model(str(path), full_check=False)
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        text = one_line(exc, with_type=False)
        if "external" in text.lower() or "data file" in text.lower() or "location" in text.lower():
            raise GraphkitError(f"{path}: refused external data: {text[:300]}") from exc
        raise GraphkitError(f"{path}: not a valid ONNX model ({text[:300]})") from exc
    if not model.graph.node and not model.graph.output:
        raise GraphkitError(f"{path}: not a valid ONNX model (empty graph)")
    return model


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


def _onnx_index_info(model) -> dict[str, tuple[int, bool, tuple]]:
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
    from graphkit.onnx_passes.graph import GraphIndex

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
                        vocab = min(vocab or rows, rows)
                        tables.append(TableRead(node.input[0], int(rows)))
                elif node.op_type == "OneHot" and node.input[0] == name:
                    depth = index.constant(node.input[1])
                    if depth is not None:
                        d = int(np.asarray(depth).reshape(-1)[0])
                        vocab = min(vocab or d, d)
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
                "install the gpu extra: pip uninstall onnxruntime && pip install 'graphkit[gpu]'"
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
        index = _onnx_index_info(proto)
        self.inputs = []
        for i in self.session.get_inputs():
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            dtype = _ort_dtype(i.type)
            spec = InputSpec(i.name, shape, dtype)
            if i.name in index:
                spec.vocab, spec.mask_zero, spec.tables = index[i.name]
                spec.role = "index"
            elif ("int" in dtype or dtype == "bool") and any(
                w in i.name.lower() for w in MASK_WORDS
            ):
                spec.role = "mask"
            elif "int" in dtype:
                spec.note = "no Gather or OneHot reads its values"
            self.inputs.append(spec)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.half_precision = _onnx_uses_half(proto)
        self.notes = []

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {
            s.name: batch[s.name] if s.dtype == "string" else _as_dtype(batch[s.name], s)
            for s in self.inputs
        }
        return list(self.session.run(None, feed))


def _as_dtype(x, spec: InputSpec) -> np.ndarray:
    """``x`` in the dtype the model declares; integers that would not fit are refused, not
    wrapped (an int64 Keras input against an export with ``--index-dtype int32``)."""
    x = np.asarray(x)
    want = np.dtype(spec.dtype)
    if x.dtype.kind in "iu" and want.kind in "iu" and x.size and x.dtype != want:
        info = np.iinfo(want)
        if x.min() < info.min or x.max() > info.max:
            raise GraphkitError(
                f"input {spec.name!r}: values outside the range of {want}, the type the "
                "ONNX model declares for it"
            )
    return np.ascontiguousarray(x, dtype=want)


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


def _ort_dtype(type_str: str) -> str:
    mapping = {
        "tensor(float)": "float32",
        "tensor(double)": "float64",
        "tensor(float16)": "float16",
        "tensor(int32)": "int32",
        "tensor(int64)": "int64",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
        "tensor(bool)": "bool",
        "tensor(string)": "string",
    }
    return mapping.get(type_str, type_str)
