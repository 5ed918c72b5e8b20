"""``graphkit run``: onnxruntime (.onnx) or LiteRT (.tflite) inference on inputs from a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import GraphkitError, one_line


class RunReport(dict):
    """What ``run`` did, as a JSON-ready dict (model, provider, samples, inputs, outputs)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self)

    def format(self) -> str:
        n = self["samples"]
        lines = [f"{self['model']}: {n} sample{'s' if n != 1 else ''} on {self['provider']}"]
        lines += [
            f"  input {i['name']}: shape {tuple(i['shape'])} {i['dtype']}{_values(i)}"
            for i in self["inputs"]
        ]
        lines += [
            f"  {o['name']}: shape {tuple(o['shape'])} {o['dtype']}, "
            f"min {o['min']:.6g} max {o['max']:.6g} mean {o['mean']:.6g}"
            for o in self["outputs"]
        ]
        if self["output"] is not None:
            lines.append(f"wrote {self['output']}")
        lines += [f"note: {n}" for n in self.get("notes", ())]
        return "\n".join(lines)


def _values(entry: dict[str, Any]) -> str:
    """``, values 3..47 (valid 0..49)``: the data's own range, beside the model's."""
    if entry.get("min") is None:
        return ""
    text = f", values {entry['min']:.6g}..{entry['max']:.6g}"
    if entry.get("valid") is not None:
        low, high = entry["valid"]
        text += f" (valid {low}..{high - 1})"
    return text


def _input_entry(spec, arr: np.ndarray) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
    numeric = arr.dtype.kind in "biuf" and arr.size
    entry["min"] = float(np.min(arr)) if numeric else None
    entry["max"] = float(np.max(arr)) if numeric else None
    entry["valid"] = [int(spec.low), int(spec.vocab)] if spec.is_index else None
    return entry


def _run_in_batches(backend, arrays: dict[str, np.ndarray], batch: int | None) -> list:
    """Run all samples at once, or in batches of ``batch`` for a model fixed to that size
    (``export --fixed-shape``): the same samples a free-batch model would get."""
    n = len(next(iter(arrays.values())))
    if batch is None or batch >= n:
        return backend.run(arrays)
    parts = [
        backend.run({k: v[start : start + batch] for k, v in arrays.items()})
        for start in range(0, n, batch)
    ]
    return [np.concatenate(outs) for outs in zip(*parts)]


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Do ``a`` and ``b`` name the same file, however spelled (links, ``..``, ``./``)?"""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as written
        return os.path.abspath(a) == os.path.abspath(b)


def check_not_an_input(output: str | os.PathLike, flag: str, sources) -> None:
    """An output file must never replace one of the command's inputs, even with ``--force``
    (``sources``: the paths the command reads; None entries are skipped): not the file
    itself, not a file inside an input folder (a ``verify --save`` replay), not an ONNX
    model's external-data file."""
    target = Path(output)
    for source in sources:
        if source is None:
            continue
        for read in _files_read(Path(source)):
            if same_file(target, read):
                raise GraphkitError(f"{flag} {output}: is the input {read}; write to another file")
        if Path(source).is_dir() and Path(source).resolve() in target.resolve().parents:
            raise GraphkitError(
                f"{flag} {output}: is inside the input folder {source}; write to another file"
            )


def _files_read(source: Path) -> list[Path]:
    """``source``, and for an ONNX model the external-data files it names (read from the
    model without its data; a file that cannot be read names none: its own check refuses it
    later)."""
    files = [source]
    if source.suffix.lower() != ".onnx" or not source.is_file():
        return files
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data

        model = onnx.load(str(source), load_external_data=False)
        for tensor in model.graph.initializer:
            if uses_external_data(tensor):
                info = {e.key: e.value for e in tensor.external_data}
                if info.get("location"):
                    files.append(source.parent / info["location"])
    except Exception:  # noqa: BLE001 - the backend's own check says what is wrong with it
        pass
    return files


def run_model(
    model: str | os.PathLike,
    inputs: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    provider: str = "cpu",
    force: bool = False,
    ranges=None,
) -> RunReport:
    """Run an ONNX (onnxruntime) or .tflite (LiteRT) model on ``inputs`` (.npz/.npy, or a
    folder that ``verify --save`` wrote); optionally save the outputs to ``output`` (.npz,
    never one of the inputs).

    ``ranges``: ``{name: (low, high)}`` or ``["NAME=LOW:HIGH", ...]``, the values an integer
    input may hold where graphkit cannot read its range from the model (checked on the inputs).
    """
    from graphkit.backends import LiteRTBackend, OnnxBackend
    from graphkit.io import atomic_output, check_output_path
    from graphkit.verification import load_inputs
    from graphkit.verification.inputs import apply_ranges, fixed_batch, parse_ranges

    suffix = Path(model).suffix.lower()
    if suffix not in (".onnx", ".tflite"):
        raise GraphkitError(
            f"{model}: graphkit run takes an .onnx model or a .tflite one (export one with "
            "graphkit export --onnx or --litert)"
        )
    parse_ranges(ranges)
    if output is not None:
        if Path(output).suffix.lower() != ".npz":
            raise GraphkitError(f"{output}: the output must end in .npz")
        check_not_an_input(output, "-o", [model, inputs])
        check_output_path(output, force=force)
    if suffix == ".tflite":
        backend, runtime = LiteRTBackend(model, provider=provider), "LiteRT"
    else:
        backend, runtime = OnnxBackend(model, provider=provider), "onnxruntime"
    specs = apply_ranges(backend.inputs, ranges) if ranges else backend.inputs
    arrays = load_inputs(inputs, specs)  # names, dtypes, shapes, batch and index ranges
    try:
        outs = _run_in_batches(backend, arrays, fixed_batch(specs))
    except Exception as exc:
        raise GraphkitError(f"{model}: {runtime} failed: {one_line(exc, with_type=False)}") from exc
    named = dict(zip(backend.output_names, outs))
    if output is not None:
        with atomic_output(output, force=force) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **named)
    return RunReport(
        {
            "model": str(model),
            "provider": provider,
            "samples": int(len(next(iter(arrays.values())))),
            "output": str(output) if output is not None else None,
            "inputs": [_input_entry(spec, arrays[spec.name]) for spec in specs],
            "notes": [f"input {s.name!r}: {s.note}" for s in specs if s.role == "range" and s.note],
            "outputs": [
                {
                    "name": name,
                    "shape": list(arr.shape),
                    "dtype": str(arr.dtype),
                    "min": float(np.min(arr)) if arr.size else float("nan"),
                    "max": float(np.max(arr)) if arr.size else float("nan"),
                    "mean": float(np.mean(arr, dtype="float64")) if arr.size else float("nan"),
                }
                for name, arr in named.items()
            ],
        }
    )
