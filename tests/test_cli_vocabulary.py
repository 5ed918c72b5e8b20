"""Issue 19: --help with examples and exit codes, one vocabulary of options, Python wording in
the library's errors and flag wording in the CLI's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.errors import GraphkitError
from tests.cli_helpers import invoke

COMMANDS = ["convert", "inspect", "rules", "demo", "verify", "export", "run", "bench"]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_help_shows_an_example_its_exit_codes_and_debug(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert any(line.startswith(f"graphkit {command}") for line in lines), result.stdout
    text = " ".join(lines)
    assert "Exit codes: 0 " in text and "2 bad input or option" in text
    assert "--debug" in text


def test_debug_after_the_command_shows_the_traceback(tmp_path):
    plain = invoke("verify", tmp_path / "a.keras", tmp_path / "b.keras")
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr
    debug = invoke("verify", tmp_path / "a.keras", tmp_path / "b.keras", "--debug")
    assert debug.exit_code == 2 and "Traceback" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "m.keras", "--onnx", "--fixed-shape", "title", "4x12"],
            "error: Got unexpected extra argument(s) (4x12) (see graphkit export --help)",
        ),
        (["convert", "m.keras"], "error: Missing option '--to'. (see graphkit convert --help)"),
        (["--bogus"], "error: No such option: --bogus (see graphkit --help)"),
        (["verfy"], "error: No such command 'verfy'."),
    ],
)
def test_usage_errors_are_one_error_line_and_exit_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1
    assert "Usage:" not in result.output


def test_bench_takes_batch_size_and_keeps_batch_as_a_hidden_alias():
    shown = invoke("bench", "--help").stdout
    assert "--batch-size" in shown and "--batch " not in shown
    for flag in ("--batch-size", "--batch"):
        result = invoke("bench", "m.keras", flag, "0")
        assert result.exit_code == 2
        assert result.stderr == "error: --batch-size must be at least 1, got 0\n"


def test_provider_for_two_keras_models_is_refused(tmp_path):
    result = invoke("verify", tmp_path / "a.keras", tmp_path / "b.keras", "--provider", "cuda")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --provider cuda: Keras models run in TensorFlow")


def test_python_errors_name_arguments_and_the_cli_names_flags():
    from graphkit.bench import check_bench_options
    from graphkit.onnx_targets import plan_passes

    with pytest.raises(GraphkitError) as info:
        plan_passes(target="coreml")
    assert str(info.value).startswith("target='coreml' needs fixed_shapes={NAME: DIMS}")
    assert info.value.for_cli().startswith("--target coreml needs --fixed-shape NAME=DIMS")
    with pytest.raises(GraphkitError, match="^batch_size must be at least 1, got 0$"):
        check_bench_options(batch_size=0)
    with pytest.raises(GraphkitError, match="^batch_size must be at least 1, got 0$"):
        check_bench_options(batch=0)  # the old keyword still works
    result = invoke("export", "m.keras", "--onnx", "--target", "coreml")
    assert result.stderr.startswith("error: --target coreml needs --fixed-shape NAME=DIMS")


def test_output_stats_use_the_reports_names():
    from graphkit.verification.stats import OutputStats

    stats = OutputStats("out", rtol=0.0, atol=0.0)
    stats.update(np.array([[1.0, 2.0]]), np.array([[1.0, 2.5]]), 0)
    assert stats.max_abs_error == stats.max_abs == 0.5
    assert stats.max_rel_error == stats.max_rel == 0.25
    assert stats.to_dict()["max_abs_error"] == 0.5  # the JSON key is unchanged


def _fixed_batch_gather(path, batch: int = 4) -> None:
    """An ONNX model fixed to batches of ``batch`` that gathers rows of a 10-row table."""
    table = numpy_helper.from_array(np.arange(20, dtype=np.float32).reshape(10, 2), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "tokens"], ["out"])],
        "g",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [batch, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 3, 2])],
        [table],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_run_feeds_a_fixed_batch_model_in_its_batches_and_explains_others(tmp_path):
    from graphkit.run import run_model

    _fixed_batch_gather(tmp_path / "m.onnx")
    tokens = np.arange(24, dtype=np.int64).reshape(8, 3) % 8 + 1
    np.savez(tmp_path / "x.npz", tokens=tokens)
    report = run_model(tmp_path / "m.onnx", tmp_path / "x.npz", tmp_path / "y.npz")
    assert np.load(tmp_path / "y.npz")["out"].shape == (8, 3, 2)
    assert "input tokens: shape (8, 3) int64, values 1..8 (valid 0..9)" in report.format()
    np.savez(tmp_path / "six.npz", tokens=tokens[:6])
    result = invoke("run", tmp_path / "m.onnx", "--inputs", tmp_path / "six.npz")
    assert result.exit_code == 2
    assert "6 samples, but the model takes batches of exactly 4" in result.stderr
    assert "onnxruntime failed" not in result.stderr
    np.savez(tmp_path / "bool.npz", tokens=tokens.astype(bool))
    with pytest.raises(GraphkitError, match="dtype bool, the model expects indices"):
        run_model(tmp_path / "m.onnx", tmp_path / "bool.npz")


def test_seq_len_that_changes_nothing_is_noted():
    import keras

    import graphkit

    tokens = keras.Input((3,), dtype="int32", name="tokens")
    out = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(tokens))
    model = keras.Model(tokens, out)
    report = graphkit.verify(model, model, samples=4, seq_len=5)
    assert "--seq-len 5 not used: the models have no variable (None) axis" in report.notes
    assert not any("--seq-len" in n for n in graphkit.verify(model, model, samples=4).notes)
