"""A model file from a newer Keras says so first, and quoted configs are cut cleanly (issue 19)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import keras
import pytest
from typer.testing import CliRunner

from graphkit.cli import app
from graphkit.errors import GraphkitError
from graphkit.io import load_model
from graphkit.keras_versions import quoted_config, saved_keras_version, short_repr
from tests.conftest import FIXTURES

NEWER = "3.99.0"
QUANTIZER = {
    "module": "keras.quantizers",
    "class_name": "AbsMaxQuantizer",
    "config": {"axis": [-1], "value_range": [-127, 127], "epsilon": 1e-07, "output_dtype": "int8"},
    "registered_name": None,
}


def _edited(tmp_path: Path, name: str, *, version: str | None, new_key: bool) -> Path:
    """fixtures/sequential.keras with another keras_version, and a config key Keras lacks."""
    out = tmp_path / name
    with (
        zipfile.ZipFile(FIXTURES / "sequential.keras") as zin,
        zipfile.ZipFile(out, "w") as zout,
    ):
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "metadata.json" and version is not None:
                data = json.dumps({**json.loads(data), "keras_version": version}).encode()
            if item.filename == "config.json" and new_key:
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "Embedding":
                        layer["config"]["embeddings_quantizer"] = QUANTIZER
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return out


def _load_error(path: Path) -> str:
    with pytest.raises(GraphkitError) as info:
        load_model(path)
    return str(info.value)


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


def test_a_newer_file_with_a_new_key_says_so_first_and_quotes_whole_keys(tmp_path):
    path = _edited(tmp_path, "newer_key.keras", version=NEWER, new_key=True)
    message = _load_error(path)
    assert message.startswith(
        f"{path}: saved by Keras {NEWER}; this is Keras {keras.__version__}: Embedding config "
    ), message
    quoted = message[message.index("{") :]
    assert quoted.startswith("{'embeddings_quantizer': {") and _balanced(quoted), quoted
    assert "older Keras" not in message  # not the wrong guess any more
    assert len(message) < len(str(path)) + 220


def test_a_file_from_this_keras_with_an_unknown_key_keeps_the_older_keras_guess(tmp_path):
    path = _edited(tmp_path, "same_key.keras", version=None, new_key=True)
    message = _load_error(path)
    assert "saved by Keras" not in message
    assert message.endswith("(a model saved by an older Keras?)")
    quoted = message[message.index("{") : message.rindex("}") + 1]
    assert _balanced(quoted) and "'embeddings_quantizer': {" in quoted, message


def test_a_newer_file_that_loads_gets_a_note_in_convert(tmp_path):
    path = _edited(tmp_path, "newer.keras", version=NEWER, new_key=False)
    notes: list[str] = []
    load_model(path, notes=notes)
    assert notes == [
        f"saved by Keras {NEWER}; this is Keras {keras.__version__}: it loaded, but check what "
        "it computes (verify)"
    ]
    result = CliRunner().invoke(
        app, ["convert", str(path), "--to", "onehot-dense", "-o", str(tmp_path / "out.keras")]
    )
    assert result.exit_code == 0, result.output
    assert f"note: saved by Keras {NEWER}; this is Keras {keras.__version__}" in result.stdout


@pytest.mark.parametrize("version", ["3.15.0", "3.13.2", "2.21.0", keras.__version__])
def test_a_file_from_this_or_an_older_keras_gets_no_note(tmp_path, version):
    notes: list[str] = []
    load_model(_edited(tmp_path, "older.keras", version=version, new_key=False), notes=notes)
    assert notes == []


def test_a_newer_h5_says_so_when_it_fails(tmp_path):
    path = tmp_path / "newer.h5"
    shutil.copyfile(FIXTURES / "sequential_keras3.h5", path)
    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = NEWER
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["config"]["embeddings_quantizer"] = QUANTIZER
        f.attrs["model_config"] = json.dumps(config)
    assert saved_keras_version(path) == NEWER
    assert f": saved by Keras {NEWER}; this is Keras " in _load_error(path)


@pytest.mark.parametrize(
    "metadata",
    [
        b'{"keras_version": "3.99.0\\u001b[31m red"}',  # not a plain version: never shown
        b'{"keras_version": 399}',
        b"not json",
        b"[]",
        b'{"keras_version": "' + b"9" * 100 + b'"}',
    ],
)
def test_odd_metadata_is_not_quoted(tmp_path, metadata):
    path = tmp_path / "odd.keras"
    with (
        zipfile.ZipFile(FIXTURES / "sequential.keras") as zin,
        zipfile.ZipFile(path, "w") as zout,
    ):
        for item in zin.infolist():
            zout.writestr(item, metadata if item.filename == "metadata.json" else zin.read(item))
    assert saved_keras_version(path) is None
    notes: list[str] = []
    load_model(path, notes=notes)
    assert notes == []


# --- quoting configs --------------------------------------------------------------------------


def test_short_repr_keeps_what_fits_and_whole_keys():
    assert short_repr({"a": 1}) == "{'a': 1}"
    config = {"embeddings_quantizer": QUANTIZER, "other_new_key": "x" * 200, "third": 3}
    text = short_repr(config, 100)
    assert text.startswith("{'embeddings_quantizer': {'module': 'keras.quantizers', ")
    assert text.endswith(", ...}") and _balanced(text) and len(text) <= 100, text
    # A key is never cut: whole, even past the width left for it, or "..." if over the width.
    key = "k" * 50
    assert short_repr({key: [1] * 100}, 60) == "{'" + key + "': [...]}"
    assert short_repr({"k" * 1000: 1}, 60) == "{...: 1}"


def test_quoted_config_finds_the_end_of_the_literal_despite_braces_in_strings():
    text = "Unrecognized keyword arguments passed to Embedding: {'a': '}{', 'b': {'c': 1}} and then"
    start = text.index("{")
    assert quoted_config(text, start) == "{'a': '}{', 'b': {'c': 1}}"
    # Not a literal (an object's repr inside): cut at a word, never mid-way.
    odd = "{'a': <object at 0x1>, 'b': " + "word " * 40 + "}"
    quoted = quoted_config(odd, 0, width=60)
    assert quoted.endswith(" ...") and len(quoted) <= 64 and not quoted[:-4].endswith("wor")
