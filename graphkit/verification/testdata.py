"""verify's replayable record: inputs and both sides' outputs in onnxruntime's test-data layout.

``DIR/test_data_set_0/input_<i>.pb`` holds input ``i`` in the model's input order,
``output_<j>.pb`` the *reference's* output ``j`` and ``candidate_output_<j>.pb`` the
candidate's, each an ``onnx.TensorProto`` named after its input or output; ``DIR/report.json``
is verify's report. onnxruntime's ``onnx_test_runner`` reads the same layout (next to a
``model.onnx``), and ``graphkit verify --inputs DIR`` replays it.

verify streams its batches, so the writer keeps the first ones in memory, up to a cap
(``MAX_SAMPLES`` samples and ``MAX_BYTES`` bytes), and writes everything at ``close`` as one
unit: a temporary folder beside ``DIR``, renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import GraphkitError, one_line

MAX_SAMPLES = 1024
MAX_BYTES = 256 * 1024 * 1024  # inputs and both sides' outputs together
SET_NAME = "test_data_set_0"
REPORT_NAME = "report.json"
_SET_RE = re.compile(r"test_data_set_\d+")
_INPUT_RE = re.compile(r"input_(\d+)\.pb")


def check_save_dir(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Where ``--save DIR`` may write: a new or empty folder, or with ``force`` one that holds
    only an earlier record (``test_data_set_*``, ``report.json``); cheap, no onnx import."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if path.is_symlink() or not path.is_dir():
            raise GraphkitError(f"{path}: exists and is not a folder; --save needs a folder")
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError as exc:
            raise GraphkitError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
        if entries:
            if not force:
                raise GraphkitError(
                    f"{path}: folder exists and is not empty (pass --force to replace it)"
                )
            other = [
                n
                for n in entries
                if n != REPORT_NAME and not (_SET_RE.fullmatch(n) and (path / n).is_dir())
            ]
            if other:
                raise GraphkitError(
                    f"{path}: holds {', '.join(other[:3])}{' ...' if len(other) > 3 else ''} "
                    "besides test data: --force replaces only a folder that --save wrote"
                )
    from graphkit.io import check_parent_writable

    check_parent_writable(path)
    return path


@dataclass
class SavedTestData:
    """What ``TestDataWriter.close`` wrote."""

    path: str  # the folder (DIR)
    samples: int  # samples saved
    total: int  # samples that ran
    notes: list[str] = field(default_factory=list)  # why fewer were saved, what was left out
    cap: int = MAX_SAMPLES  # the most samples kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "samples": self.samples,
            "of": self.total,
            "cap": self.cap,
            "notes": self.notes,
        }

    def note(self) -> str:
        """One line for the report's notes."""
        part = ""
        if self.samples < self.total:
            part = f" (the first {self.samples} of {self.total}"
            part += f"; at most {self.cap} are kept)" if self.samples == self.cap else ")"
        return (
            f"saved {self.samples} sample{'s' if self.samples != 1 else ''}{part} with both "
            f"sides' outputs to {self.path} (replay: --inputs {self.path})"
        )


class TestDataWriter:
    """Collects verify's batches (``add``) and writes them as onnxruntime test data (``close``).

    ``input_names``: the model's inputs in order (``input_<i>.pb``); ``output_names``: the
    reference's outputs in order (``output_<j>.pb``, ``candidate_output_<j>.pb``).
    """

    __test__ = False  # not a pytest class, whatever its name says

    def __init__(
        self,
        path: str | os.PathLike,
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        force: bool = False,
        max_samples: int = MAX_SAMPLES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.path = check_save_dir(path, force=force)
        self.force = force
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.max_samples = max(1, int(max_samples))
        self.max_bytes = int(max_bytes)
        self.samples = 0  # kept
        self.total = 0  # seen
        self.notes: list[str] = []
        self._bytes = 0
        self._full = False
        self._bytes_capped = False
        self._parts: dict[str, list[np.ndarray]] = {}

    def add(
        self,
        batch_inputs: Mapping[str, Any],
        ref_outputs: Mapping[str, Any],
        cand_outputs: Mapping[str, Any],
    ) -> None:
        """Keep this batch (or its first samples) while under the caps; memory only."""
        arrays = [np.asarray(batch_inputs[n]) for n in self.input_names]
        n = len(arrays[0]) if arrays and arrays[0].ndim else 1
        self.total += n
        if self._full:
            return
        items = [(f"in:{name}", a) for name, a in zip(self.input_names, arrays)]
        for side, outs in (("ref", ref_outputs), ("cand", cand_outputs)):
            items += [
                (f"{side}:{name}", np.asarray(outs[name]))
                for name in self.output_names
                if name in outs
            ]
        per_batch = [a for _, a in items if not (a.ndim and a.shape[0] == n)]
        take = min(n, self.max_samples - self.samples)
        per_sample = sum(a.nbytes for _, a in items if a.ndim and a.shape[0] == n) / max(n, 1)
        if per_sample and (self.max_bytes - self._bytes) // per_sample < take:
            take = int((self.max_bytes - self._bytes) // per_sample)
            self._bytes_capped = True
        if per_batch:
            # an output without the batch axis first cannot be cut or joined: one batch only
            if self.samples:
                self._stop("an output has no batch axis to join batches along")
                return
            take = n
            self._full = True
        if take < 1 and self.samples == 0:
            take = 1  # one sample, however large
        if take < 1:
            self._stop(None)
            return
        for key, a in items:
            part = a[:take] if a.ndim and a.shape[0] == n else a
            parts = self._parts.setdefault(key, [])
            if parts and parts[0].shape[1:] != part.shape[1:]:
                self._stop(f"{key.split(':', 1)[1]!r} changes shape between batches")
                return
            parts.append(part.copy())
        self._bytes += int(per_sample * take)
        self.samples += take
        if take < n:
            self._stop(None)

    def _stop(self, why: str | None) -> None:
        self._full = True
        if why:
            self.notes.append(f"saved the first {self.samples} samples only: {why}")

    def close(self, report_dict: Mapping[str, Any] | None = None) -> SavedTestData:
        """Write the folder as one unit (temporary folder beside it, then rename) and say what."""
        from graphkit import interrupts
        from graphkit.io import _sync_dir

        saved = SavedTestData(
            str(self.path), self.samples, self.total, list(self.notes), self.max_samples
        )
        if self._bytes_capped:
            saved.notes.append(
                f"saved {self.samples} samples only: at most {self.max_bytes // 2**20} MiB "
                "of inputs and outputs are kept"
            )
        check_save_dir(self.path, force=self.force)
        parent = self.path.parent if str(self.path.parent) else Path(".")
        with interrupts.deferred():
            try:
                folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=parent))
            except OSError as exc:
                raise GraphkitError(
                    f"{self.path}: cannot write in {parent} ({exc.strerror or exc})"
                ) from exc
            interrupts.register(str(folder))
        old = None
        with contextlib.suppress(OSError):  # mkdtemp's 0700: the umask's mode, as mkdir gives
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(folder, 0o777 & ~mask)
        try:
            data = folder / SET_NAME
            data.mkdir()
            files = [(f"input_{i}.pb", f"in:{n}", n) for i, n in enumerate(self.input_names)]
            for j, name in enumerate(self.output_names):
                files.append((f"output_{j}.pb", f"ref:{name}", name))
                files.append((f"candidate_output_{j}.pb", f"cand:{name}", name))
            for filename, key, name in files:
                parts = self._parts.get(key)
                if not parts:
                    if key.startswith("cand:"):
                        saved.notes.append(f"the candidate gave no output {name!r}")
                        continue
                    raise GraphkitError(f"--save {self.path}: no data for {name!r}")
                array = parts[0] if len(parts) == 1 else np.concatenate(parts)
                tensor = _to_tensor(array, name)
                (data / filename).write_bytes(tensor.SerializeToString())
            record = dict(report_dict or {})
            record["saved"] = saved.to_dict()
            (folder / REPORT_NAME).write_text(
                json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8"
            )
            with interrupts.deferred():
                if self.path.exists():
                    check_save_dir(self.path, force=self.force)  # the rules once more, now
                    old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old.", dir=parent))
                    interrupts.register(str(old))
                    os.replace(self.path, old / "d")  # an empty or forced folder steps aside
                os.replace(folder, self.path)
            _sync_dir(parent)
        except OSError as exc:
            raise GraphkitError(f"{self.path}: cannot write it ({exc.strerror or exc})") from exc
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
            interrupts.unregister(str(folder))
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
                interrupts.unregister(str(old))
        return saved


def _to_tensor(array: np.ndarray, name: str):
    from onnx import numpy_helper

    if array.dtype.kind in "US":
        array = array.astype(object)  # onnx writes strings from object arrays
    try:
        return numpy_helper.from_array(array, name=name)
    except Exception as exc:  # a dtype ONNX has no type for
        raise GraphkitError(
            f"--save: cannot store {name!r} ({array.dtype}) as an ONNX tensor: "
            f"{one_line(exc, with_type=False)}"
        ) from exc


def is_test_data_dir(path: str | os.PathLike) -> bool:
    """Does ``path`` look like a test-data folder (cheap: names only, nothing parsed)?"""
    path = Path(path)
    return path.is_dir() and ((path / SET_NAME).is_dir() or (path / "input_0.pb").is_file())


def check_test_data_dir(path: str | os.PathLike) -> Path:
    """The folder holding ``input_<i>.pb``: ``path`` itself or its one ``test_data_set_*``."""
    path = Path(path)
    if not path.is_dir():
        raise GraphkitError(f"{path}: no such folder")
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        raise GraphkitError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if any(_INPUT_RE.fullmatch(n) for n in names):
        return path
    sets = [n for n in names if _SET_RE.fullmatch(n) and (path / n).is_dir()]
    if not sets:
        raise GraphkitError(
            f"{path}: not a test-data folder (no input_0.pb, no test_data_set_0/; "
            "write one with graphkit verify --save DIR)"
        )
    if len(sets) > 1:
        raise GraphkitError(
            f"{path}: holds {len(sets)} test data sets ({', '.join(sets[:3])}...): "
            f"pass one of them, e.g. {path / sets[0]}"
        )
    return path / sets[0]


def read_test_data(
    path: str | os.PathLike, input_names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Read ``input_<i>.pb`` from ``path`` or ``path/test_data_set_0``: name -> array.

    Names come from the tensors' own names; an unnamed tensor takes the name of the model
    input at its position (``input_names``, the model's inputs in order). Anything odd (not a
    TensorProto, a gap in the numbering, external data, a name the model does not have, more
    files than inputs) is one GraphkitError.
    """
    import onnx
    from onnx import numpy_helper

    folder = check_test_data_dir(path)
    found = [m.group(1) for p in folder.iterdir() if (m := _INPUT_RE.fullmatch(p.name))]
    odd = [f"input_{g}.pb" for g in found if str(int(g)) != g]
    if odd:
        raise GraphkitError(f"{folder}: unexpected file name {odd[0]} (expected input_0.pb, ...)")
    numbers = sorted(int(g) for g in found)
    if not numbers:
        raise GraphkitError(f"{folder}: no input_0.pb")
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    if missing:
        raise GraphkitError(
            f"{folder}: input_{missing[0]}.pb is missing (found input_{numbers[-1]}.pb)"
        )
    if input_names is not None and len(numbers) > len(input_names):
        raise GraphkitError(
            f"{folder}: {len(numbers)} input files, the model takes {len(input_names)} "
            f"({', '.join(input_names)})"
        )
    arrays: dict[str, np.ndarray] = {}
    for i in numbers:
        file = folder / f"input_{i}.pb"
        where = str(file)
        tensor = onnx.TensorProto()
        try:
            tensor.ParseFromString(file.read_bytes())
        except OSError as exc:
            raise GraphkitError(f"{where}: cannot read it ({exc.strerror or exc})") from exc
        except Exception as exc:  # protobuf's DecodeError, and whatever else bytes give
            raise GraphkitError(f"{where}: not an ONNX TensorProto") from exc
        if tensor.data_type == onnx.TensorProto.UNDEFINED:
            raise GraphkitError(f"{where}: not an ONNX TensorProto (no data type)")
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise GraphkitError(f"{where}: refers to external data; give the values inline")
        try:
            array = numpy_helper.to_array(tensor)
        except Exception as exc:
            raise GraphkitError(
                f"{where}: unreadable tensor ({one_line(exc, with_type=False)[:200]})"
            ) from exc
        if array.dtype == object:  # strings: bytes from the proto
            array = np.array(
                [
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                    for v in array.flat
                ],
                dtype=str,
            ).reshape(array.shape)
        name = tensor.name
        if not name:
            if input_names is None:
                raise GraphkitError(f"{where}: the tensor has no name")
            name = input_names[i]
        elif input_names is not None and name not in input_names:
            raise GraphkitError(
                f"{where}: tensor {name!r}, but the model has no input of that name "
                f"(inputs: {', '.join(input_names)})"
            )
        if name in arrays:
            raise GraphkitError(f"{where}: a second tensor for input {name!r}")
        arrays[name] = array
    return arrays
