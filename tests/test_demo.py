"""`graphkit demo`, the README's first command, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphkit import demo, interrupts
from graphkit.cli import app
from graphkit.demo import run_demo


def test_demo_cli_refuses_a_file_as_workdir(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(app, ["demo", "--workdir", str(target)])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


# --- the demo's temporary folder: removed at the end, on an error and on Ctrl-C/SIGTERM --------


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch) -> Path:
    """TMPDIR pointed at an empty folder, for this process and its children."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the folder it chose
    return tmp


# onnxruntime's telemetry keeps one session file, $TMPDIR/.ses, reused by every run: not ours.
ONNXRUNTIME_SESSION_FILE = ".ses"


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name != ONNXRUNTIME_SESSION_FILE)


def test_demo_shows_identical_predictions_and_removes_its_temporary_folder(tmpdir_env):
    """Without --workdir the files go to a graphkit-demo-* folder under TMPDIR, removed at the
    end (each run used to leave one behind)."""
    lines: list[str] = []
    folders: set[Path] = set()
    fused: list[bool] = []

    def echo(line: str) -> None:
        folders.update(p for p in tmpdir_env.iterdir() if p.name.startswith("graphkit-demo-"))
        if line.lstrip().startswith("onehot-dense --fuse-onehot"):
            fused.extend((f / "masked_lstm.onehot-dense.fused.onnx").is_file() for f in folders)
        lines.append(line)

    result = run_demo(echo=echo)
    assert result["onehot-dense"] == 0.0 and result["round trip"] == 0.0
    assert result["tables_bitwise_equal"] is True and result["verify_exact"] is True
    text = "\n".join(lines)
    assert result["old_model"] == 0.0  # the Keras 2 recipe, against tf_keras' predictions
    for step in ("== 1.", "== 5.", "== 6.", "== 7.", "== 8.", "== 9."):
        assert step in text
    assert "EQUIVALENT (bit for bit on " in text and "onehot-dense --fuse-onehot" in text
    assert len(folders) == 1 and fused == [True]
    assert _leftovers(tmpdir_env) == []
    assert interrupts.registered() == []
    assert "now removed: --workdir DIR keeps them" in lines[-1]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_the_temporary_folder_goes_on_an_interrupt_or_an_error(tmpdir_env, monkeypatch, exc):
    def steps(work: Path, echo, *, kept: bool) -> dict:
        assert not kept and work.parent == tmpdir_env and work in interrupts.registered()
        (work / "model.keras").write_bytes(b"x")
        raise exc

    monkeypatch.setattr(demo, "_run_in", steps)
    with pytest.raises(exc):
        run_demo(echo=lambda line: None)
    assert _leftovers(tmpdir_env) == []
    assert interrupts.registered() == []


def test_a_given_workdir_is_kept(tmp_path, monkeypatch):
    def steps(work: Path, echo, *, kept: bool) -> dict:
        assert kept and work not in interrupts.registered()
        (work / "model.keras").write_bytes(b"x")
        return {}

    monkeypatch.setattr(demo, "_run_in", steps)
    run_demo(tmp_path / "work", echo=lambda line: None)
    assert (tmp_path / "work" / "model.keras").is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_the_cli_demo_removes_its_folder(tmpdir_env):
    """The real command, stopped once its folder holds the converted model: exit 143, no folder."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmpdir_env.parent,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        # a test run started in the background has SIGTERM's default handler, not an ignore
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    )
    try:
        for line in proc.stdout:
            if line.startswith("== 3."):  # the first conversion is written
                break
        else:
            pytest.fail(f"the demo ended early: {proc.wait()} {proc.stderr.read()}")
        assert any(name.startswith("graphkit-demo-") for name in _leftovers(tmpdir_env))
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 143
    assert proc.stderr.read().strip().splitlines()[-1] == "error: interrupted"
    assert _leftovers(tmpdir_env) == []
