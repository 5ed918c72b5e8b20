"""The CLI: exit codes, one `error:` line, no partial files, JSON output."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from tests.cli_helpers import invoke
from tests.conftest import FIXTURES, fixture_inputs, max_abs_diff, run


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
            [
                "nothing to convert",
                "already in embedding form",
                "the other way is --to onehot-dense",
            ],
        ),
        (
            [
                "convert",
                FIXTURES / "onehot_dense.keras",
                "--to",
                "onehot-dense",
                "-o",
                "/tmp/x.keras",
            ],
            ["already in onehot-dense form", "the other way is --to embedding"],
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


def test_inspect_lists_a_layer_called_in_two_models_with_each_call_shape():
    """A task that calls its backbone's table again, reversed (tied logits, as KerasHub's
    GPT2CausalLM does): the second row is that layer again, its weights counted once. (Keras
    cannot load this plain-Functional form back from a file; KerasHub's task classes can.)"""
    import graphkit

    table = keras.layers.ReversibleEmbedding(50, 8, name="table")
    ids = keras.Input((None,), dtype="int32", name="ids")
    backbone = keras.Model(ids, table(ids), name="backbone")
    top = keras.Input((None,), dtype="int32", name="top_ids")
    model = keras.Model(top, table(backbone(top), reverse=True), name="tied")
    report = graphkit.inspect_model(model)
    rows = {row["path"]: row for row in report.to_dict()["layers"]}
    assert rows["backbone/table"]["output_shape"] == "(None, None, 8)"
    assert rows["backbone/table"]["shared_with"] is None
    assert rows["table"]["output_shape"] == "(None, None, 50)"
    assert rows["table"]["shared_with"] == "backbone/table"
    assert report.total_params == 400
    assert "(None, None, 50)  shared" in report.format()


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("graphkit ")


# --- export's deployment options ------------------------------------------------------------


@pytest.mark.parametrize(
    "options, fragments",
    [
        (["--fixed-shape", "tokens=2x"], ["--fixed-shape 'tokens=2x'", "expected NAME=DIMS"]),
        (["--fixed-shape", "tokens=0x5"], ["must be at least 1, got 0"]),
        (["--fixed-shape", "tokens"], ["expected NAME=DIMS"]),
        (["--fixed-shape", "a=2x3", "--fixed-shape", "a=2x4"], ["'a' is given twice"]),
        (["--fixed-shape", "a=2x3", "--fixed-shape", "b=3"], ["share the batch axis"]),
        (["--index-dtype", "int64"], ["--index-dtype int64: expected int32"]),
        (["--pass", "fix_shapes"], ["needs the shapes to fix: --fixed-shape NAME=DIMS"]),
    ],
)
def test_export_deploy_option_errors_come_before_tensorflow(options, fragments, monkeypatch):
    import graphkit.cli as cli

    def no_tensorflow(*args, **kwargs):
        raise AssertionError("TensorFlow started although an option was wrong")

    monkeypatch.setattr(cli, "_tensorflow", no_tensorflow)
    args = ["export", FIXTURES / "sequential.keras", "--onnx", "-o", "/tmp/never.onnx"]
    assert_one_error_line(invoke(*args, *options), *fragments)


@pytest.mark.parametrize(
    "shape, fragments",
    [
        ("tokns=2x6", ["--fixed-shape tokns=2x6: the model has no input 'tokns'", "tokens"]),
        ("tokens=2x6x1", ["input 'tokens' has rank 2 (shape (None, 6)), not 3"]),
        ("tokens=2x16", ["input 'tokens' has shape (None, 6): axis 1 is 6, not 16"]),
    ],
)
def test_export_fixed_shape_names_and_ranks_are_checked_before_the_export(
    shape, fragments, tmp_path, monkeypatch
):
    import graphkit.onnx_export as onnx_export

    def no_trace(*args, **kwargs):
        raise AssertionError("traced although --fixed-shape does not fit")

    monkeypatch.setattr(onnx_export, "trace", no_trace)
    out = tmp_path / "m.onnx"
    result = invoke(
        "export", FIXTURES / "sequential.keras", "--onnx", "-o", out, "--fixed-shape", shape
    )
    assert_one_error_line(result, *fragments)
    assert not out.exists()


def test_export_with_int32_indices_and_a_fixed_shape(tmp_path):
    out = tmp_path / "m.onnx"
    result = invoke(
        "export",
        FIXTURES / "onehot_dense.keras",
        "--onnx",
        "-o",
        out,
        "--fuse-onehot",
        "--index-dtype",
        "int32",
        "--fixed-shape",
        "tokens=2x12",
        "--fixed-shape",
        "bag=2x4",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["deploy"] == {
        "index_dtype": "int32",
        "fixed_shapes": {"tokens": [2, 12], "bag": [2, 4]},
        "inputs": {
            "tokens": {"dtype": "int32", "shape": [2, 12]},
            "bag": {"dtype": "int32", "shape": [2, 4]},
        },
    }
    names = [p["name"] for p in report["passes"]]
    assert names == ["fuse_onehot", "int32_indices", "fix_shapes"]
    assert report["verify"]["samples"] == 64
    import onnxruntime as ort

    from graphkit.io import load_model

    rng = np.random.default_rng(0)  # vocabularies 30 and 12 (see `graphkit inspect`)
    feeds = {
        "tokens": rng.integers(0, 30, size=(2, 12)).astype(np.int32),
        "bag": rng.integers(0, 12, size=(2, 4)).astype(np.int32),
    }
    model = load_model(FIXTURES / "onehot_dense.keras")
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert max_abs_diff(run(model, feeds), got) < 1e-5


# -- early answers: mistakes in options and paths answer before TensorFlow's import --------

EARLY_MISTAKES = [
    (["convert", "{seq}", "--to", "onehot-dense", "-o", "{tmp}/exists.keras"], "already exists"),
    (["convert", "{seq}", "--to", "onehot-dense", "-o", "{tmp}/no/x.keras"], "does not exist"),
    (["convert", "{seq}", "--to", "onehot-dense", "-o", "{tmp}/x.onnx"], "unsupported extension"),
    (["export", "{seq}", "--onnx", "-o", "{tmp}/exists.onnx"], "already exists"),
    (["export", "{seq}", "--onnx", "-o", "{tmp}/no/x.onnx"], "does not exist"),
    (["export", "{seq}", "--onnx", "-o", "{tmp}/x.txt"], "must end in .onnx"),
    (["export", "{seq}", "--onnx", "--fuse-onehot", "--lower-gather"], "cannot be combined"),
    (["export", "{seq}", "--onnx", "--opset", "9", "-o", "{tmp}/y.onnx"], "--opset 9"),
    (["export", "{seq}", "--onnx", "--samples", "0", "-o", "{tmp}/y.onnx"], "--samples must"),
    (["export", "{seq}", "--onnx", "--seq-len", "0", "-o", "{tmp}/y.onnx"], "--seq-len must"),
    (["export", "{seq}", "--onnx", "--inputs", "{tmp}/no.npz", "-o", "{tmp}/y.onnx"], "no such"),
    (["export", "{seq}", "--onnx", "--target", "nnapi"], "--target nnapi needs --fixed-shape"),
    (["export", "{seq}", "--onnx", "--target", "coreml"], "CoreML MLProgram runs static shapes"),
    (["export", "{seq}", "--onnx", "--target", "tpu", "--fixed-shape", "x=1"], "nnapi, coreml"),
    (["verify", "{seq}", "{seq}", "--samples", "0"], "--samples must be at least 1"),
    (["verify", "{seq}", "{seq}", "--rtol", "-1"], "--rtol must be a finite number"),
    (["verify", "{seq}", "{seq}", "--junit", "{tmp}/no/j.xml"], "does not exist"),
    (["verify", "{seq}", "{seq}", "--inputs", "{tmp}/x.txt"], "must be a .npz or .npy"),
    (["bench", "{seq}", "--runs", "0"], "--runs must be at least 1"),
    (["bench", "{seq}", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["bench", "{seq}", "--batch", "0"], "--batch-size must be at least 1"),  # the old name
    (["bench", "{seq}", "--seq-len", "0"], "--seq-len must be at least 1"),
    (["run", "{tmp}/m.onnx", "--inputs", "{tmp}/i.npz", "-o", "{tmp}/exists.npz"], "already"),
    (["run", "{tmp}/m.onnx", "--inputs", "{tmp}/i.npz", "-o", "{tmp}/x.txt"], "must end in .npz"),
    (["inspect", "{tmp}/saved"], "is a TensorFlow SavedModel folder"),
    (["export", "{tmp}/saved/saved_model.pb", "--onnx"], "the graph of a TensorFlow SavedModel"),
]


def test_mistakes_answer_before_tensorflow_is_imported(tmp_path):
    import subprocess
    import sys

    for name in ("exists.keras", "exists.onnx", "exists.npz", "x.txt", "m.onnx", "i.npz"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"x")
    seq = FIXTURES / "sequential.keras"
    cases = [
        ([a.format(seq=seq, tmp=tmp_path) for a in args], fragment)
        for args, fragment in EARLY_MISTAKES
    ]
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from graphkit.cli import app\n"
        f"cases = json.loads({json.dumps(json.dumps(cases))})\n"
        "for args, fragment in cases:\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 2 and fragment in r.stderr, (args, r.output)\n"
        "    assert r.stderr.count('\\n') == 1, r.stderr\n"
        "print([m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnxruntime') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_saved_model_is_named_with_what_to_do(tmp_path):
    folder = tmp_path / "exported"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    for command in (["inspect", folder], ["convert", folder, "--to", "embedding"]):
        result = invoke(*command)
        assert_one_error_line(result, "is a TensorFlow SavedModel folder", "model.save('m.keras')")
    graph = invoke("verify", folder / "saved_model.pb", FIXTURES / "sequential.keras")
    assert_one_error_line(graph, "saved_model.pb: is the graph of a TensorFlow SavedModel")


def test_progress_is_drawn_on_a_terminal_and_json_stays_clean(tmp_path):
    """stderr a terminal (a pty), stdout a pipe: the steps show there, stdout is the JSON."""
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "graphkit"
    path = FIXTURES / "masked_lstm.keras"
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(exe), "verify", str(path), str(path), "--samples", "64", "--json"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the pty closes when the process ends
            break
        if not chunk:
            break
        drawn += chunk
    stdout = proc.stdout.read()
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    assert json.loads(stdout)["equivalent"] is True
    text = drawn.decode("utf-8", "replace")
    for step in ("starting TensorFlow", f"loading {path}", "comparing 64 samples"):
        assert step in text, text
    assert "error" not in text and "warning" not in text
