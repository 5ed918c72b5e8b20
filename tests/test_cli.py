"""The CLI: exit codes, one `error:` line, no partial files, JSON output."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from graphkit.cli import app
from tests.conftest import FIXTURES, fixture_inputs, max_abs_diff, run

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_error_line(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_convert_default_output_and_refuse_overwrite(tmp_path):
    src = tmp_path / "model.keras"
    shutil.copyfile(FIXTURES / "masked_lstm.keras", src)
    result = invoke("convert", src, "--to", "onehot-dense")
    assert result.exit_code == 0, result.output
    out = tmp_path / "model.onehot-dense.keras"
    assert out.is_file()
    assert (
        "converted  embedding (Embedding) -> embedding_onehot + embedding_timedist" in result.stdout
    )
    assert "optimizer state is not carried over" in result.stdout
    before = out.read_bytes()
    again = invoke("convert", src, "--to", "onehot-dense")
    assert_one_error_line(again, "already exists", "--force")
    assert out.read_bytes() == before
    forced = invoke("convert", src, "--to", "onehot-dense", "--force")
    assert forced.exit_code == 0


def test_convert_json_report(tmp_path):
    out = tmp_path / "o.keras"
    result = invoke(
        "convert", FIXTURES / "multi_io_shared.keras", "--to", "onehot-dense", "-o", out, "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["converted"] == 2 and report["refused"] == 0
    assert {f["path"] for f in report["findings"]} == {"shared_embedding", "user_embedding"}
    assert report["output"] == str(out)


def test_convert_back_and_predictions_match(tmp_path):
    a, b = tmp_path / "a.keras", tmp_path / "b.h5"
    assert (
        invoke("convert", FIXTURES / "nested.keras", "--to", "onehot-dense", "-o", a).exit_code == 0
    )
    assert invoke("convert", a, "--to", "embedding", "-o", b).exit_code == 0
    x = fixture_inputs("nested")
    from graphkit.io import load_model

    original = keras.saving.load_model(FIXTURES / "nested.keras")
    assert max_abs_diff(run(original, x), run(load_model(b), x)) == 0.0


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["convert", "missing.keras", "--to", "embedding"], ["no such file"]),
        (["convert", FIXTURES / "sequential.npz", "--to", "embedding"], ["unsupported extension"]),
        (["convert", FIXTURES / "sequential.keras", "--to", "nope"], ["--to 'nope'"]),
        (
            ["convert", FIXTURES / "sequential.keras", "--to", "embedding", "-o", "/tmp/x.keras"],
            ["nothing to convert"],
        ),
        (
            ["convert", FIXTURES / "unknown_layer.keras", "--to", "onehot-dense"],
            ["'Mystery'", "--import"],
        ),
        (["convert", FIXTURES / "with_lambda.keras", "--to", "onehot-dense"], ["--unsafe"]),
        (
            [
                "convert",
                FIXTURES / "sequential.keras",
                "--to",
                "onehot-dense",
                "-o",
                "/no/such/dir/x.keras",
            ],
            ["does not exist"],
        ),
        (
            ["convert", FIXTURES / "sequential.keras", "--to", "onehot-dense", "-o", "out.onnx"],
            ["unsupported extension"],
        ),
        (["inspect", FIXTURES], ["is a directory"]),
    ],
)
def test_user_errors_are_one_line_exit_2(args, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    assert_one_error_line(invoke(*args), *fragments)
    assert set(tmp_path.iterdir()) == before  # nothing written


def _nan_and_plain_embeddings(path):
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    bad = keras.layers.Embedding(5, 2, name="bad")
    good = keras.layers.Embedding(5, 2, name="good")
    out = keras.layers.Concatenate(name="cat")([bad(tokens), good(tokens)])
    model = keras.Model(tokens, out)
    table = np.asarray(bad.embeddings).copy()
    table[1, 0] = np.nan
    bad.embeddings.assign(table)
    model.save(path)


def test_refused_anchor_fails_and_partial_converts_the_rest_and_warns(tmp_path):
    src = tmp_path / "m.keras"
    _nan_and_plain_embeddings(src)
    refused = invoke("convert", src, "--to", "onehot-dense", "-o", tmp_path / "r.keras")
    assert_one_error_line(refused, "bad (the table holds inf or NaN", "--partial")
    assert not (tmp_path / "r.keras").exists()
    out = tmp_path / "p.keras"
    result = invoke("convert", src, "--to", "onehot-dense", "--partial", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: partial: left 1 Embedding(s)")
    assert out.is_file()


def test_debug_shows_traceback():
    result = invoke("--debug", "convert", "missing.keras", "--to", "embedding")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "error: missing.keras: no such file" in result.stderr


def test_inspect_table_and_json():
    result = invoke("inspect", FIXTURES / "onehot_dense.keras")
    assert result.exit_code == 0, result.output
    assert "tokens_onehot" in result.stdout and "OneHot, foldable -> Embedding" in result.stdout
    assert "OneHot, not foldable: its output also feeds 'bag_counts'" in result.stdout
    data = json.loads(invoke("inspect", FIXTURES / "nested.keras", "--json").stdout)
    embeddings = {
        row["path"]: row["convertible"] for row in data["layers"] if row["role"] == "embedding"
    }
    assert embeddings == {"encoder/enc_embedding": True, "tag_embedding": True}
    assert [i["name"] for i in data["inputs"]] == ["tokens", "tag"]


def test_inspect_lists_hidden_embeddings_once_by_attribute_path():
    data = json.loads(
        invoke(
            "inspect",
            FIXTURES / "hidden_embedding.keras",
            "--import",
            "graphkit.examples_custom",
            "--json",
        ).stdout
    )
    paths = [row["path"] for row in data["layers"]]
    assert len(paths) == len(set(paths))
    rows = {row["path"]: row for row in data["layers"]}
    assert rows["token_and_position/token"]["convertible"] is True
    assert rows["token_and_position/position"]["role"] == "embedding"
    assert rows["plain_embedding"]["convertible"] is True


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("graphkit ")
