"""Hostile .keras and .h5 files: refused in one line naming the limit, quickly, and nothing
left in the temporary folder when Keras' own extraction is interrupted (issue 18)."""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from graphkit import GraphkitError, limits
from graphkit import io as gio
from graphkit.cli import app
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
SEQUENTIAL = FIXTURES / "sequential.keras"

# --- crafting archives byte by byte (zipfile refuses to write most of these) ---------------


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _deflate_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes, and their CRC, built 1 MiB at a time."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block, parts, crc, left = bytes(1 << 20), [], 0, size
    while left:
        part = block[: min(left, len(block))]
        crc = zlib.crc32(part, crc)
        parts.append(c.compress(part))
        left -= len(part)
    parts.append(c.flush())
    return b"".join(parts), crc


def _member(name, data=b"", *, payload=None, method=0, crc=None, size=None, flags=0):
    """(name, stored bytes, method, crc, declared size, flags) for ``_write_zip``."""
    if payload is None:
        payload = _deflate(data) if method == 8 else data
    return (
        name,
        payload,
        method,
        zlib.crc32(data) if crc is None else crc,
        len(data) if size is None else size,
        flags,
    )


def _write_zip(path: Path, members, *, listed: dict[str, int] | None = None) -> Path:
    """A zip of ``members``; ``listed[name]`` repeats that member's central-directory entry."""
    body, central = bytearray(), []
    for name, payload, method, crc, size, flags in members:
        raw = name.encode()
        offset = len(body)
        body += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc, len(payload), size,
            len(raw), 0,
        )  # fmt: skip
        body += raw + payload
        entry = struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0, 0x21, crc,
            len(payload), size, len(raw), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += [entry + raw] * (listed or {}).get(name, 1)
    directory = b"".join(central)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(directory), len(body), 0
    )
    path.write_bytes(bytes(body) + directory + end)
    return path


def _valid_members(**replace) -> list:
    """The members of the sequential fixture, stored; ``replace[name]`` swaps one (None drops)."""
    out = []
    with zipfile.ZipFile(SEQUENTIAL) as zf:
        for info in zf.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    out.append(replace.pop(info.filename))
                continue
            out.append(_member(info.filename, zf.read(info)))
    return out + [m for m in replace.values() if m is not None]


def _bomb(path: Path) -> Path:
    """One 64 MiB deflate stream of zeros (64 KiB stored) listed 64 times."""
    payload, crc = _deflate_zeros(64 << 20)
    junk = _member("assets/junk.bin", payload=payload, method=8, crc=crc, size=64 << 20)
    return _write_zip(path, _valid_members() + [junk], listed={"assets/junk.bin": 64})


def _duplicate(path: Path) -> Path:
    return _write_zip(path, _valid_members(), listed={"model.weights.h5": 2})


def _big_config(path: Path) -> Path:
    """A config.json of 32 MiB (a string of 'x'), stored in about 32 KiB."""
    text = b'{"class_name": "Sequential", "pad": "' + b"x" * (32 << 20) + b'"}'
    config = _member("config.json", text, method=8)
    return _write_zip(path, _valid_members(**{"config.json": config}))


def _lying_config(path: Path) -> Path:
    """config.json declares 100 bytes; its deflate stream holds 64 MiB."""
    text = b'{"a": "' + b"x" * (64 << 20) + b'"}'
    config = _member("config.json", payload=_deflate(text), method=8, size=100)
    return _write_zip(path, _valid_members(**{"config.json": config}))


def _junk_outside(path: Path) -> Path:
    payload, crc = _deflate_zeros(8 << 20)
    junk = [
        _member(f"junk{i}.bin", payload=payload, method=8, crc=crc, size=8 << 20) for i in range(4)
    ]
    return _write_zip(path, _valid_members() + junk)


def _junk_assets(path: Path) -> Path:
    """Ten 8 MiB members of zeros in assets/: each under the ratio floor, together far over."""
    payload, crc = _deflate_zeros(8 << 20)
    junk = [
        _member(f"assets/junk{i}.bin", payload=payload, method=8, crc=crc, size=8 << 20)
        for i in range(10)
    ]
    return _write_zip(path, _valid_members() + junk)


def _method(path: Path, method: int) -> Path:
    with zipfile.ZipFile(SEQUENTIAL) as zf:
        text = zf.read("config.json")
    config = _member("config.json", text, payload=text, method=method)
    return _write_zip(path, _valid_members(**{"config.json": config}))


def _encrypted(path: Path) -> Path:
    with zipfile.ZipFile(SEQUENTIAL) as zf:
        text = zf.read("config.json")
    return _write_zip(
        path, _valid_members(**{"config.json": _member("config.json", text, flags=1)})
    )


def _config_text(path: Path, text: bytes) -> Path:
    return _write_zip(path, _valid_members(**{"config.json": _member("config.json", text)}))


CRAFTED = {
    # name: (maker, fragment of the one-line error)
    "bomb": (_bomb, "MAX_INFLATION_RATIO"),
    "duplicate": (_duplicate, "listed twice"),
    "big_config": (_big_config, "MAX_CONFIG_BYTES"),
    "lying_config": (_lying_config, "corrupt .keras archive"),
    "junk_outside": (_junk_outside, "KERAS_MEMBERS"),
    "junk_assets": (_junk_assets, "MAX_INFLATION_RATIO"),
    "bzip2": (lambda p: _method(p, 12), "KERAS_COMPRESSION_METHODS"),
    "method_99": (lambda p: _method(p, 99), "KERAS_COMPRESSION_METHODS"),
    "encrypted": (_encrypted, "encrypted"),
    "not_utf8": (lambda p: _config_text(p, b'{"name": "\xff\xfe"}'), "not UTF-8"),
    "deep_5000": (lambda p: _config_text(p, b"[" * 5000 + b"]" * 5000), "MAX_JSON_DEPTH"),
    "deep_300": (
        lambda p: _config_text(p, b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}"),
        "MAX_JSON_DEPTH",
    ),
    "not_json": (lambda p: _config_text(p, b"{nope"), "not valid JSON"),
}


def _refusal(path: Path) -> str:
    """The GraphkitError that check_model_file, then read_config, gives for ``path``."""
    with pytest.raises(GraphkitError) as info:
        checked, fmt = gio.check_model_file(path)
        gio.read_config(checked, fmt)
    return str(info.value)


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_archive_is_refused_in_one_line_naming_the_limit(tmp_path, name):
    maker, fragment = CRAFTED[name]
    path = maker(tmp_path / f"{name}.keras")
    assert path.stat().st_size < 1 << 20  # a small file...
    start = time.monotonic()
    message = _refusal(path)
    assert time.monotonic() - start < 2.0  # ...refused without inflating what it declares
    assert fragment in message and "\n" not in message, message


def test_the_valid_archive_passes(tmp_path):
    path = _write_zip(tmp_path / "ok.keras", _valid_members())
    checked, fmt = gio.check_model_file(path)
    assert gio.read_config(checked, fmt)["class_name"] == "Sequential"
    assets = [_member(f"assets/vocab{i}.txt", b"a b c\n" * 100, method=8) for i in range(3)]
    path = _write_zip(tmp_path / "assets.keras", _valid_members() + assets)
    assert gio.read_config(*gio.check_model_file(path))["class_name"] == "Sequential"


def test_a_member_read_stops_past_its_cap(tmp_path):
    path = _config_text(tmp_path / "m.keras", b'{"a": "' + b"x" * 5000 + b'"}')
    with zipfile.ZipFile(path) as zf, pytest.raises(GraphkitError, match="MAX_CONFIG_BYTES"):
        gio._read_member(zf, zf.getinfo("config.json"), path, cap=1000, keep=True)


def test_too_many_members(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_KERAS_MEMBERS", 8)
    extra = [_member(f"assets/{i}.txt", b"x") for i in range(8)]
    path = _write_zip(tmp_path / "many.keras", _valid_members() + extra)
    assert "MAX_KERAS_MEMBERS" in _refusal(path)


def test_a_corrupt_weights_member_is_still_caught_before_keras(tmp_path):
    members = _valid_members()
    name, payload, *rest = members[-1]
    assert name == "model.weights.h5"
    members[-1] = (
        name,
        payload[:200] + bytes(b ^ 0xFF for b in payload[200:208]) + payload[208:],
        *rest,
    )
    path = _write_zip(tmp_path / "bad.keras", members)
    with pytest.raises(GraphkitError, match="corrupt .keras archive.*CRC"):
        gio.check_model_file(path)


# --- .h5: the model_config attribute gets the same limits ----------------------------------


def _h5(path: Path, config) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = config
    return path


@pytest.mark.parametrize(
    "config, fragment",
    [
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "MAX_JSON_DEPTH"),
        (b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}", "MAX_JSON_DEPTH"),
        (b"{nope", "not valid JSON"),
    ],
)
def test_h5_config_attribute_limits(tmp_path, config, fragment):
    path = _h5(tmp_path / "m.h5", config)
    with pytest.raises(GraphkitError, match=fragment):
        gio.read_config(*gio.check_model_file(path))


def test_h5_config_size_is_checked_before_it_is_read(tmp_path, monkeypatch):
    import numpy as np

    path = _h5(tmp_path / "m.h5", np.bytes_(b'{"a": "' + b"x" * 4000 + b'"}'))
    monkeypatch.setattr(limits, "MAX_CONFIG_BYTES", 1000)
    read = []
    monkeypatch.setattr("h5py.AttributeManager.__getitem__", lambda *a: read.append(a))
    with pytest.raises(GraphkitError, match="MAX_CONFIG_BYTES"):
        gio.read_config(*gio.check_model_file(path))
    assert read == []


def test_h5_that_is_not_hdf5_inside_is_one_line(tmp_path):
    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(2000))
    with pytest.raises(GraphkitError, match="HDF5"):
        gio.read_config(*gio.check_model_file(path))


# --- fuzzing: mutated bytes of a small valid archive ----------------------------------------

VALID = SEQUENTIAL.read_bytes()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.one_of(st.none(), st.integers(22, len(VALID))),
)
def test_fuzzed_archives_give_a_graphkit_error_or_a_config(tmp_path, edits, cut):
    data = bytearray(VALID)
    for at, value in edits:
        data[at] = value
    if cut is not None:
        data = data[:cut]
    path = tmp_path / "fuzz.keras"
    path.write_bytes(bytes(data))
    try:
        checked, fmt = gio.check_model_file(path)
        config = gio.read_config(checked, fmt)
    except GraphkitError as exc:
        assert "\n" not in str(exc)
    else:
        assert config is None or isinstance(config, dict)


# Where a zip's structure lives in the fixture: mutate headers, not only stored bytes.
_HEADER_OFFSETS = sorted(
    {
        i
        for sig in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06")
        for start in range(len(VALID))
        if VALID.startswith(sig, start)
        for i in range(start, min(start + 46, len(VALID)))
    }
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(_HEADER_OFFSETS), st.integers(0, 255)), min_size=1, max_size=4
    )
)
def test_fuzzed_zip_headers_give_a_graphkit_error_or_a_config(tmp_path, edits):
    _read_edited(VALID, edits, tmp_path / "fuzz.keras")


def _read_edited(original: bytes, edits, path) -> None:
    """``original`` with bytes set at ``edits`` ((offset, value) pairs), written to ``path``
    and read as a model file: a one-line GraphkitError, or a config (a dict or None)."""
    data = bytearray(original)
    for at, value in edits:
        data[at] = value
    path.write_bytes(bytes(data))
    try:
        config = gio.read_config(*gio.check_model_file(path))
    except GraphkitError as exc:
        assert "\n" not in str(exc)
    else:
        assert config is None or isinstance(config, dict)


H5 = (FIXTURES / "legacy_keras2.h5").read_bytes()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(8, len(H5) - 1), st.integers(0, 255)), min_size=1, max_size=8
    )
)
def test_fuzzed_h5_gives_a_graphkit_error_or_a_config(tmp_path, edits):
    _read_edited(H5, edits, tmp_path / "fuzz.h5")


# --- the CLI: exit 2 and one `error:` line for each crafted file --------------------------


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_cli_inspect_refuses_each_crafted_file(tmp_path, name):
    maker, fragment = CRAFTED[name]
    path = maker(tmp_path / "bad.keras")
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0] and "Traceback" not in result.output


# --- Keras' own temporary files are graphkit's ----------------------------------------------


def _many_assets(path: Path, count: int) -> Path:
    assets = [_member(f"assets/a{i // 100}/f{i}.txt", b"x" * 64) for i in range(count)]
    return _write_zip(path, _valid_members() + assets)


def test_keras_extraction_goes_into_a_registered_folder(tmp_path, monkeypatch):
    import tempfile

    from graphkit import interrupts

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    seen = []
    real = os.makedirs

    def spy(name, *args, **kwargs):  # Keras' extraction: where, and is it registered?
        if "assets" in str(name):
            seen.append((Path(name), interrupts.registered()))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", spy)
    model = gio.load_model(_many_assets(tmp_path / "m.keras", 20), compile=False)
    assert model.name
    assert seen, "Keras extracted nothing: the test tests nothing"
    for made, registered in seen:
        assert any(made.is_relative_to(r) for r in registered), (made, registered)
        assert made.is_relative_to(folder)
    assert list(folder.iterdir()) == []
    assert tempfile.tempdir == str(folder)  # restored


def test_keras_weights_fallback_extracts_into_the_registered_folder(tmp_path, monkeypatch):
    """Short of memory, Keras extracts the weights beside the file it opened: that is now a
    link inside graphkit's folder, never the user's folder."""
    from keras.src.saving import saving_lib

    from graphkit import interrupts

    monkeypatch.setattr(saving_lib, "is_memory_sufficient", lambda model: False)
    where = []
    real = zipfile.ZipFile.extract

    def spy(self, member, path=None, pwd=None):
        where.append((Path(path), interrupts.registered()))
        return real(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", spy)
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    model = model_dir / "m.keras"
    model.write_bytes(SEQUENTIAL.read_bytes())
    gio.load_model(model, compile=False)
    assert where, "Keras did not take its extract-to-disk path: the test tests nothing"
    for folder, registered in where:
        assert not folder.is_relative_to(model_dir)
        assert any(folder.is_relative_to(r) for r in registered), (folder, registered)
    assert sorted(p.name for p in model_dir.iterdir()) == ["m.keras"]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _files_under(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_while_keras_extracts_leaves_nothing(tmp_path, signum):
    model = _many_assets(tmp_path / "m.keras", 6000)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "inspect", str(model)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
        preexec_fn=_default_signals,
    )
    deadline = time.monotonic() + 120
    caught = 0
    while time.monotonic() < deadline and proc.poll() is None:
        caught = _files_under(tmpdir)
        if caught >= 200:  # mid-way through 6000 files
            proc.send_signal(signum)
            break
        select.select([], [], [], 0.005)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("no exit 60 s after the signal")
    assert caught >= 200, f"the extraction was never seen under way ({proc.returncode})"
    assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum], err
    assert b"error: interrupted" in err
    left = [str(p.relative_to(tmpdir)) for p in tmpdir.rglob("*")]
    assert left == [], f"{len(left)} left, e.g. {left[:3]}"


# --- .h5 read in a child process: a file that crashes or hangs HDF5 is one line ---------------


def test_an_h5_file_that_crashes_the_hdf5_library_is_one_error(tmp_path, monkeypatch):
    """HDF5 is C: a damaged heap under a string attribute crashed the test process once (a
    fuzzed file, SIGSEGV). The reader runs in a child; here the child crashes on purpose."""
    from graphkit import h5_probe

    path = tmp_path / "crash.h5"
    path.write_bytes(H5)
    monkeypatch.setattr(
        h5_probe, "_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    )
    with pytest.raises(
        GraphkitError,
        match=r"crash.h5: corrupt HDF5 file: the HDF5 library "
        r"crashed reading it \(signal 11\)",
    ):
        gio.read_config(*gio.check_model_file(path))
    res = CliRunner().invoke(app, ["inspect", str(path)])
    assert res.exit_code == 2 and "crashed reading it" in res.stderr


def test_an_h5_file_that_hangs_the_reader_is_stopped(tmp_path, monkeypatch):
    from graphkit import h5_probe

    path = tmp_path / "hang.h5"
    path.write_bytes(H5)
    monkeypatch.setattr(h5_probe, "_CHILD", "import time; time.sleep(60)")
    monkeypatch.setattr(h5_probe, "TIMEOUT_SECONDS", 1)
    with pytest.raises(GraphkitError, match="did not finish in 1 s"):
        gio.read_config(*gio.check_model_file(path))


def test_the_child_reads_what_the_file_holds():
    from graphkit import h5_probe

    facts = h5_probe.probe(FIXTURES / "legacy_keras2.h5")
    assert facts.config is not None and b'"class_name"' in facts.config
    assert facts.version is not None and facts.version.startswith("2.")


# --- a .keras archive's HDF5 weights, read in a child before Keras reads them ----------------


def _keras_copy(tmp_path, name="m.keras", weights=None, method=0) -> Path:
    """The sequential fixture, its weights member replaced by ``weights(bytes)`` (valid CRCs),
    stored (``method`` 0, as Keras writes it) or deflated (8)."""
    members = []
    with zipfile.ZipFile(SEQUENTIAL) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            if info.filename == "model.weights.h5":
                data = weights(data) if weights is not None else data
                members.append(_member(info.filename, data, method=method))
                continue
            members.append(_member(info.filename, data))
    return _write_zip(tmp_path / name, members)


def test_keras_weights_that_crash_the_hdf5_library_are_one_error(tmp_path, monkeypatch):
    from graphkit import h5_probe

    path = _keras_copy(tmp_path, "crash.keras")
    monkeypatch.setattr(
        h5_probe, "_KERAS_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    )
    with pytest.raises(
        GraphkitError,
        match=r"crash.keras: corrupt model.weights.h5 in the archive: the HDF5 library "
        r"crashed reading it \(signal 11\)",
    ):
        gio.load_model(path)
    res = CliRunner().invoke(app, ["convert", str(path), "--to", "onehot-dense"])
    assert res.exit_code == 2 and "crashed reading it" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_keras_weights_that_hang_the_reader_are_stopped(tmp_path, monkeypatch):
    from graphkit import h5_probe

    path = _keras_copy(tmp_path, "hang.keras")
    monkeypatch.setattr(h5_probe, "_KERAS_CHILD", "import time; time.sleep(60)")
    monkeypatch.setattr(h5_probe, "TIMEOUT_SECONDS", 1)
    with pytest.raises(GraphkitError, match="model.weights.h5 in the archive: reading it did not"):
        gio.load_model(path)


def test_damaged_keras_weights_are_refused_before_keras_reads_them(tmp_path):
    """Bytes flipped in the HDF5 superblock's addresses (the archive's CRCs are right): the
    child's h5py fails, and the file is refused in one line with what h5py said."""

    def head(data: bytes) -> bytes:
        return data[:40] + bytes(b ^ 0x5A for b in data[40:200]) + data[200:]

    path = _keras_copy(tmp_path, "head.keras", head)
    with pytest.raises(GraphkitError) as info:
        gio.load_model(path)
    text = str(info.value)
    assert "head.keras: corrupt model.weights.h5 in the archive (OSError: " in text, text
    assert "\n" not in text


def test_the_weights_child_reads_a_valid_archive_whole_or_by_its_ends(tmp_path, monkeypatch):
    from graphkit import h5_probe

    # stored (read in place in the archive) and deflated (read into memory)
    for name, method in (("ok.keras", 0), ("deflated.keras", 8)):
        path = _keras_copy(tmp_path, name, method=method)
        h5_probe.check_keras_weights(path)  # reads every dataset: passes
        assert gio.load_model(path).count_params() > 0
    monkeypatch.setattr(h5_probe, "FULL_READ_BYTES", 1)  # past it: metadata and the ends
    for name, method in (("ends.keras", 0), ("ends-deflated.keras", 8)):  # the latter on disk
        other = _keras_copy(tmp_path, name, method=method)
        h5_probe.check_keras_weights(other)
        assert gio.load_model(other).count_params() > 0
    # the damaged superblock is caught on every path
    for name, method in (("bad-stored.keras", 0), ("bad-deflated.keras", 8)):
        bad = _keras_copy(
            tmp_path, name, lambda d: d[:40] + bytes(b ^ 0x5A for b in d[40:200]) + d[200:], method
        )
        with pytest.raises(GraphkitError, match="corrupt model.weights.h5 in the archive"):
            h5_probe.check_keras_weights(bad)


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_no_weights_reader_outlives_graphkit(tmp_path):
    """A reader started for a file that is then never loaded (the command stopped earlier) is
    killed at exit; a child on its own stops itself past the timeout (signal.alarm)."""
    path = _keras_copy(tmp_path, "slow.keras")
    code = (
        "from graphkit import h5_probe\n"
        "h5_probe._KERAS_CHILD = 'import time; time.sleep(60)'\n"
        f"h5_probe.start_keras_weights({str(path)!r})\n"
        "(child,) = [p for p in h5_probe._weights.values() if p is not None]\n"
        "print(child.pid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(ROOT)
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[-1])
    for _ in range(50):
        if _dead(pid):
            break
        time.sleep(0.1)
    assert _dead(pid), f"reader {pid} still running"
