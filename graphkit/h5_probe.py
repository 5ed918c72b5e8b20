"""Read a legacy ``.h5`` file's facts, and a ``.keras`` archive's ``model.weights.h5``, in a
child process, so that a damaged file cannot crash graphkit.

The HDF5 library is C: on a damaged file (a fuzzed global heap under a variable-length
string attribute, for one) it can crash the process with a segmentation fault instead of
raising, which no ``except`` catches. So before anything in graphkit's process (or Keras')
reads an ``.h5`` file, a child process opens it with h5py, reads the ``model_config`` and
``keras_version`` attributes, and walks every group and dataset: their attributes, shapes,
types and data (the reads Keras' loader makes). If the child dies, the file is refused in one
line; if it finishes, the same reads are safe in this process. One child per file version
(path, size, modification time), cached.

A ``.keras`` archive's weights are HDF5 too: ``start_keras_weights`` starts a child that opens
the ``model.weights.h5`` member as Keras does (in memory) and makes Keras' reads (every
dataset; past ``FULL_READ_BYTES``, each dataset's first and last rows and all metadata; a
stored member is read in place, a large compressed one from a temporary file, as Keras does);
``check_keras_weights`` waits for it before Keras reads the file. The CLI starts it before
importing TensorFlow, so that it runs beside that import.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from graphkit import limits
from graphkit.errors import GraphkitError

# a damaged file can also make HDF5 loop: the child is stopped after this many seconds
TIMEOUT_SECONDS = 120

# Both children make the reads Keras' loaders make: every attribute (weight_names,
# layer_names...) and every dataset in row blocks; ``whole=False``: its first and last block.
_WALK = r"""
import h5py
import numpy as np


def walk(f, block, whole=True):
    def visit(name, obj):
        for key in list(obj.attrs):
            obj.attrs[key]
        if isinstance(obj, h5py.Dataset):
            if obj.shape is None or obj.ndim == 0:
                obj[()]
                return
            n = obj.shape[0]
            rows = max(1, block // max(1, obj.dtype.itemsize * int(np.prod(obj.shape[1:]) or 1)))
            for start in range(0, n, rows) if whole else sorted({0, max(0, n - rows)}):
                obj[start : start + rows]

    for key in list(f.attrs):
        f.attrs[key]
    f.visititems(visit)
"""

_CHILD = (
    _WALK
    + r"""
import base64, json, sys

path, max_config, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {"config": None, "version": None, "problem": None}
try:
    with h5py.File(path, "r") as f:
        if "model_config" in f.attrs:
            attr = f.attrs.get_id("model_config")
            dtype = attr.dtype
            if attr.shape not in ((), (1,)) or dtype.kind not in "SUO":
                out["problem"] = "the model_config attribute is not a text"
            elif dtype.kind in "SU" and dtype.itemsize > max_config:
                out["problem"] = f"size:{dtype.itemsize}"
            else:
                raw = f.attrs["model_config"]
                if isinstance(raw, np.ndarray):
                    raw = raw.reshape(-1)[0]
                if isinstance(raw, str):
                    raw = raw.encode("utf-8", "surrogatepass")
                if not isinstance(raw, (bytes, np.bytes_)):
                    out["problem"] = "the model_config attribute is not a text"
                elif len(raw) > max_config:
                    out["problem"] = f"size:{len(raw)}"
                else:
                    out["config"] = base64.b64encode(bytes(raw)).decode("ascii")
        version = f.attrs.get("keras_version")
        if isinstance(version, bytes):
            version = version.decode("ascii", "replace")
        out["version"] = version if isinstance(version, str) else None
        walk(f, block)
except Exception as exc:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    out["error"] = text[:300]
sys.stdout.write(json.dumps(out))
"""
)


_KERAS_CHILD = (
    _WALK
    + r"""
import io, json, os, shutil, signal, struct, sys, tempfile, zipfile

path, member, full, block, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if hasattr(signal, "alarm"):  # a hang stops here even if graphkit is gone and waits no more
    signal.alarm(limit)


class Window(io.RawIOBase):
    # a stored member's bytes in the archive, seekable at once (zipfile's stream is not)
    def __init__(self, f, start, size):
        self.f, self.start, self.size, self.pos = f, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, pos, whence=0):
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def readinto(self, buf):
        n = max(0, min(len(buf), self.size - self.pos))
        self.f.seek(self.start + self.pos)
        got = self.f.readinto(memoryview(buf)[:n]) if n else 0
        self.pos += got
        return got


out = {"error": None}
folder = None
try:
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        info = zf.getinfo(member)
        whole = info.file_size <= full
        if info.compress_type == zipfile.ZIP_STORED:
            raw.seek(info.header_offset)
            head = raw.read(30)
            if head[:4] != b"PK\x03\x04":
                raise ValueError("bad local header")
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            fobj = Window(raw, info.header_offset + 30 + name_len + extra_len, info.file_size)
        elif whole:
            fobj = io.BytesIO(zf.read(member))
        else:  # a large compressed member: on disk, as Keras itself does then
            folder = tempfile.mkdtemp(prefix="graphkit-weights-")
            fobj = zf.extract(member, folder)
        with h5py.File(fobj, "r") as f:
            walk(f, block, whole)
except Exception as exc:
    out["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
finally:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
sys.stdout.write(json.dumps(out))
"""
)

# the weights member Keras reads from a .keras archive
KERAS_WEIGHTS = "model.weights.h5"
# members up to this size are read whole in the child (as Keras reads them: in memory);
# beyond it, the metadata and each dataset's first and last rows (time, and the child's memory)
FULL_READ_BYTES = 256 << 20


@dataclass(frozen=True)
class H5Facts:
    """What the child read: the ``model_config`` bytes (None: no such attribute) and the
    ``keras_version`` attribute (None: none, or not text)."""

    config: bytes | None
    version: str | None


_cache: dict[tuple, H5Facts | GraphkitError] = {}


def probe(path: str | os.PathLike) -> H5Facts:
    """Read ``path``'s facts in a child process (see the module's text); GraphkitError, one
    line, for a damaged file, including one that crashes or hangs the HDF5 library."""
    path = Path(path)
    key = _readable_version(path)
    if key not in _cache:
        try:
            _cache[key] = _run_child(path)
        except GraphkitError as exc:  # asked again (version, then config): the same answer
            _cache[key] = exc
    found = _cache[key]
    if isinstance(found, GraphkitError):
        raise GraphkitError(str(found))
    return found


_weights: dict[tuple, subprocess.Popen | GraphkitError | None] = {}


def _version(path: Path) -> tuple:
    """The file version the answers are cached by: path, size, modification time, inode."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _readable_version(path: Path) -> tuple:
    try:
        return _version(path)
    except OSError as exc:
        raise GraphkitError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def start_keras_weights(path: str | os.PathLike) -> None:
    """Start the child that reads ``path``'s ``model.weights.h5`` (a ``.keras`` archive that
    ``check_model_file`` passed), unless one ran or runs for this file version. Returns at
    once; ``check_keras_weights`` waits for the answer."""
    path = Path(path)
    try:
        key = _version(path)
        if key in _weights:
            return
        import zipfile

        with zipfile.ZipFile(path) as zf:
            if KERAS_WEIGHTS not in zf.namelist():
                _weights[key] = None  # nothing to read (an .npz store, or no weights)
                return
    except Exception:  # the archive checks say what is wrong with it, not this
        return
    _reap()
    argv = [sys.executable, "-c", _KERAS_CHILD, str(path), KERAS_WEIGHTS]
    argv += [str(FULL_READ_BYTES), str(64 << 20), str(TIMEOUT_SECONDS + 10)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        _weights[key] = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
        )
    except OSError as exc:  # no process to be had (too many open files...): said on check
        _weights[key] = GraphkitError(
            f"{path}: cannot start the reader of its {KERAS_WEIGHTS} ({exc.strerror or exc})"
        )
        return
    if not _kill_at_exit:
        import atexit

        atexit.register(_kill_children)
        _kill_at_exit.append(True)


_kill_at_exit: list[bool] = []


def _reap() -> None:
    """Collect the answers of children that finished and nobody asked (their pipes close)."""
    for key, found in list(_weights.items()):
        if isinstance(found, subprocess.Popen) and found.poll() is not None:
            _weights[key] = _keras_answer(Path(key[0]), found)


def _kill_children() -> None:
    """At exit (the CLI's too: it runs the atexit functions): no reader outlives graphkit."""
    for found in _weights.values():
        if isinstance(found, subprocess.Popen) and found.poll() is None:
            found.kill()


def check_keras_weights(path: str | os.PathLike) -> None:
    """Raise GraphkitError (one line) if reading ``path``'s ``model.weights.h5`` failed,
    crashed or hung the HDF5 library in the child; start the child first if none ran."""
    path = Path(path)
    key = _readable_version(path)
    if key not in _weights:
        start_keras_weights(path)
    found = _weights.get(key)
    if isinstance(found, subprocess.Popen):
        found = _weights[key] = _keras_answer(path, found)
    if isinstance(found, GraphkitError):
        raise GraphkitError(str(found))


def _keras_answer(path: Path, child: subprocess.Popen) -> GraphkitError | None:
    where = f"{path}: corrupt {KERAS_WEIGHTS} in the archive"
    try:
        try:
            stdout, stderr = child.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise _timed_out(where) from None
        out = _answer(where, child.returncode, stdout, stderr)
    except GraphkitError as exc:
        return exc
    if out.get("error"):
        return GraphkitError(f"{where} ({out['error']})")
    return None


def _run_child(path: Path) -> H5Facts:
    argv = [sys.executable, "-c", _CHILD, str(path), str(limits.MAX_CONFIG_BYTES), str(64 << 20)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    where = f"{path}: corrupt HDF5 file"
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=TIMEOUT_SECONDS, env=env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise _timed_out(where) from None
    out = _answer(where, done.returncode, done.stdout, done.stderr)
    if out.get("error"):
        raise GraphkitError(f"{path}: corrupt or truncated HDF5 file ({out['error']})")
    problem = out.get("problem")
    if problem and problem.startswith("size:"):
        size = int(problem[5:])
        raise GraphkitError(
            f"{path}: the model_config attribute holds {limits.size_text(size)}, over the "
            f"limit of {limits.size_text(limits.MAX_CONFIG_BYTES)} "
            "(graphkit.limits.MAX_CONFIG_BYTES)"
        )
    if problem:
        raise GraphkitError(f"{path}: {problem}")
    config = base64.b64decode(out["config"]) if out.get("config") is not None else None
    version = out.get("version")
    return H5Facts(config, version if isinstance(version, str) else None)


def _timed_out(where: str) -> GraphkitError:
    return GraphkitError(f"{where}: reading it did not finish in {TIMEOUT_SECONDS} s")


def _answer(where: str, returncode: int, stdout: bytes, stderr: bytes) -> dict:
    """A child's JSON answer; GraphkitError (``where: how``) where it crashed, failed or gave
    none."""
    if returncode != 0:
        how = (
            f"the HDF5 library crashed reading it (signal {-returncode})"
            if returncode < 0
            else f"the reader failed ({_last_line(stderr)})"
        )
        raise GraphkitError(f"{where}: {how}")
    try:
        return json.loads(stdout)
    except ValueError:
        raise GraphkitError(f"{where}: the reader gave no answer") from None


def _last_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no message"
