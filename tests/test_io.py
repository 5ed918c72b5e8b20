"""graphkit.io: every bad file gets a clear GraphkitError; writes are atomic."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from graphkit import GraphkitError
from graphkit.io import atomic_output, load_model, save_model
from tests.conftest import FIXTURES, load_fixture


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.keras", "no such file"),
        (lambda p: (p / "dir.keras").mkdir() or p / "dir.keras", "is a directory"),
        (lambda p: _write(p / "empty.keras", b""), "empty file"),
        (lambda p: _write(p / "noise.keras", os.urandom(300)), "not a zip file"),
        (lambda p: _write(p / "noise.h5", os.urandom(300)), "not an HDF5 file"),
        (lambda p: _write(p / "model.txt", b"hello"), "unsupported extension"),
    ],
)
def test_bad_files_are_refused_in_words(tmp_path, make, message):
    with pytest.raises(GraphkitError, match=message):
        load_model(make(tmp_path))


def test_truncated_archive(tmp_path):
    data = (FIXTURES / "sequential.keras").read_bytes()
    path = _write(tmp_path / "cut.keras", data[: len(data) // 2])
    with pytest.raises(GraphkitError, match="not a zip file|corrupt"):
        load_model(path)


def test_zip_without_config(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(GraphkitError, match="no config.json"):
        load_model(path)


def test_corrupt_member_is_caught(tmp_path):
    src = FIXTURES / "sequential.keras"
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    for i in range(start, start + 8):
        data[i] ^= 0xFF
    path = _write(tmp_path / "bad.keras", bytes(data))
    with pytest.raises(GraphkitError, match="corrupt"):
        load_model(path)


def test_unknown_layer_class_names_it_and_import(tmp_path):
    with pytest.raises(GraphkitError, match=r"unknown layer class 'Mystery'.*--import"):
        load_model(FIXTURES / "unknown_layer.keras")


def test_import_module_registers_custom_layer():
    model = load_model(FIXTURES / "hidden_embedding.keras", imports=["graphkit.examples_custom"])
    assert model.get_layer("token_and_position").__class__.__name__ == "TokenAndPosition"


def test_import_file(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import builtins\nbuiltins._graphkit_plugin_ran = True\n")
    load_model(FIXTURES / "sequential.keras", imports=[str(plugin)])
    import builtins

    assert builtins._graphkit_plugin_ran is True


@pytest.mark.parametrize(
    "spec, message",
    [("no_such_module_xyz", "No module named"), ("missing_file.py", "no such file")],
)
def test_bad_imports(spec, message):
    with pytest.raises(GraphkitError, match=message):
        load_model(FIXTURES / "sequential.keras", imports=[spec])


def test_import_file_that_raises(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(GraphkitError, match="broken.py failed: RuntimeError: boom"):
        load_model(FIXTURES / "sequential.keras", imports=[str(plugin)])


def test_lambda_refused_in_safe_mode_and_loaded_with_unsafe():
    with pytest.raises(GraphkitError, match="--unsafe"):
        load_model(FIXTURES / "with_lambda.keras")
    model = load_model(FIXTURES / "with_lambda.keras", unsafe=True)
    out = np.asarray(model(np.array([[1, 2, 3, 4, 5]])))
    table = model.get_layer("embedding").get_weights()[0]
    np.testing.assert_allclose(out[0], 2.0 * table[[1, 2, 3, 4, 5]])


def test_unsafe_does_not_leak_into_later_safe_loads():
    load_model(FIXTURES / "with_lambda.keras", unsafe=True)
    with pytest.raises(GraphkitError, match="--unsafe"):
        load_model(FIXTURES / "with_lambda.keras")


def test_save_refuses_to_overwrite_without_force(tmp_path):
    target = _write(tmp_path / "out.keras", b"precious")
    with pytest.raises(GraphkitError, match="already exists.*--force"):
        save_model(load_fixture("sequential"), target)
    assert target.read_bytes() == b"precious"


def test_failed_save_leaves_existing_file_and_no_temporary(tmp_path):
    target = _write(tmp_path / "out.keras", b"precious")

    class Exploding:
        def save(self, path):
            with open(path, "wb") as fh:
                fh.write(b"half")
            raise RuntimeError("disk on fire")

    with pytest.raises(GraphkitError, match="disk on fire"):
        save_model(Exploding(), target, force=True)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.keras"]


def test_force_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = _write(tmp_path / "victim.txt", b"do not touch")
    link = tmp_path / "out.keras"
    link.symlink_to(victim)
    save_model(load_fixture("sequential"), link, force=True)
    assert victim.read_bytes() == b"do not touch"
    assert not link.is_symlink() and zipfile.is_zipfile(link)


def test_unwritable_or_missing_folder(tmp_path):
    with pytest.raises(GraphkitError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "x.keras", force=False):
            pass
    # /proc refuses new files even to root; a read-only folder refuses them to other users
    with pytest.raises(GraphkitError, match="cannot write in /proc|not writable"):
        with atomic_output("/proc/graphkit-test.keras", force=False):
            pass
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() != 0:  # root ignores folder permissions, so only check them as a user
        with pytest.raises(GraphkitError, match="not writable"):
            with atomic_output(ro / "x.keras", force=False):
                pass


def test_os_errors_while_writing_become_user_errors(tmp_path):
    target = _write(tmp_path / "out.npz", b"precious")
    with pytest.raises(GraphkitError, match="cannot write it .No space left on device"):
        with atomic_output(target, force=True) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


def test_lambda_in_h5_refused_in_safe_mode(tmp_path):
    from graphkit import examples

    path = tmp_path / "lambda.h5"
    examples.with_lambda().save(path)
    with pytest.raises(GraphkitError, match="--unsafe"):
        load_model(path)
    assert load_model(path, unsafe=True).get_layer("double") is not None


def test_truncated_h5_and_weights_only_h5(tmp_path):
    data = (FIXTURES / "legacy_keras2.h5").read_bytes()
    with pytest.raises(GraphkitError, match="corrupt or truncated HDF5 file"):
        load_model(_write(tmp_path / "cut.h5", data[:3000]))
    weights = tmp_path / "w.weights.h5"
    load_fixture("sequential").save_weights(weights)
    renamed = tmp_path / "w.h5"
    weights.rename(renamed)
    with pytest.raises(GraphkitError, match="weights only"):
        load_model(renamed)
