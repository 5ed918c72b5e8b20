"""`graphkit demo`, the README's first command, end to end."""

from __future__ import annotations

from typer.testing import CliRunner

from graphkit.cli import app
from graphkit.demo import run_demo


def test_demo_shows_identical_predictions(tmp_path):
    lines = []
    result = run_demo(tmp_path, echo=lines.append)
    assert result["onehot-dense"] == 0.0 and result["round trip"] == 0.0
    assert result["tables_bitwise_equal"] is True and result["verify_exact"] is True
    text = "\n".join(lines)
    assert result["old_model"] == 0.0  # the Keras 2 recipe, against tf_keras' predictions
    for step in ("== 1.", "== 5.", "== 6.", "== 7.", "== 8.", "== 9."):
        assert step in text
    assert "EQUIVALENT (bit for bit on " in text and "onehot-dense --fuse-onehot" in text
    assert (tmp_path / "masked_lstm.onehot-dense.fused.onnx").is_file()


def test_demo_cli_refuses_a_file_as_workdir(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(app, ["demo", "--workdir", str(target)])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
