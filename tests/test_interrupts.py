"""Ctrl-C and SIGTERM: exit 130/143, exactly one `error: interrupted` line, no files left behind.

Real processes get real signals. Each child prints READY once it is where the signal should
find it, so no test depends on how fast this machine is.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from graphkit import interrupts
from graphkit.io import atomic_output
from tests.conftest import FIXTURES

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parent.parent
ONE_LINE = "error: interrupted\n"

# Holds a temporary output file (atomic_output) and a temporary folder, then waits for a
# signal in the way argv[1] says.
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path

    from graphkit import interrupts
    from graphkit._tf import _stderr_fd_silenced
    from graphkit.io import atomic_output

    mode, out = sys.argv[1], Path(sys.argv[2])
    interrupts.install()
    if mode == "blocked":
        # The main thread stuck in a long C call that ignores signals, as in TensorFlow:
        # only the watcher thread can see the signal.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    with atomic_output(out / "result.bin", force=False) as tmp:
        with interrupts.temporary_directory("graphkit-test-") as folder:
            tmp.write_bytes(b"partial")
            (folder / "inside.bin").write_bytes(b"x")
            print(tmp, folder, sep="\\n")
            if mode == "silenced":
                with _stderr_fd_silenced():
                    print("READY", flush=True)
                    time.sleep(60)
            elif mode == "flooding":  # until stdout's pipe is full and the write blocks
                print("READY", flush=True)
                while True:
                    sys.stdout.write("x" * 1000 + "\\n")
            elif mode == "busy":
                print("READY", flush=True)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    pass
            else:
                print("READY", flush=True)
                time.sleep(60)
    print("not interrupted", flush=True)
    """
)

# An interrupt inside deferred() waits for the block's end, so a path created and
# registered there is still removed.
DEFERRED_CHILD = textwrap.dedent(
    """
    import signal, sys, tempfile, time

    from graphkit import interrupts

    interrupts.install()
    if sys.argv[1] == "blocked":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    with interrupts.deferred():
        print("READY", flush=True)
        time.sleep(2)
        path = tempfile.mkdtemp(prefix="graphkit-deferred-")
        interrupts.register(path)
        print(path, flush=True)
    print("not interrupted", flush=True)
    """
)


def _env(tmp_path: Path) -> dict[str, str]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT))
    env.pop("PYTHONUNBUFFERED", None)  # the exit must flush stdout itself
    return env


def _default_signals() -> None:
    """In the child: SIGINT and SIGTERM as a terminal would deliver them.

    A test run started in the background (``cmd &`` in a script, some CI runners) has
    SIGINT ignored, and children inherit that; graphkit then rightly keeps it ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start(args: list[str], tmp_path: Path, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd or tmp_path,
        env=_env(tmp_path),
        preexec_fn=_default_signals,
    )


def _read_until_ready(proc: subprocess.Popen, timeout: float = 120) -> list[str]:
    """The lines the child printed before READY (fails if it exits or stalls first)."""
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"READY\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            pytest.fail(f"child never got ready; stdout so far: {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                _, err = proc.communicate()
                pytest.fail(f"child exited {proc.returncode} before READY: {err.decode()}")
            data += chunk
    before, proc.leftover = data.split(b"READY\n", 1)
    return before.decode().splitlines()


def _finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no exit {timeout} s after the signal; stderr: {err.decode()!r}")
    out = getattr(proc, "leftover", b"") + out
    return proc.returncode, out.decode(), err.decode()


def _child(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path, Path, Path]:
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = _start([str(script), mode, str(out)], tmp_path)
    tmp, folder = (Path(line) for line in _read_until_ready(proc))
    assert tmp.exists() and (folder / "inside.bin").exists()  # the test can see them go
    return proc, out, tmp, folder


def _assert_clean(tmp_path: Path, out: Path) -> None:
    assert list(out.iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


# --- in-process: the registry --------------------------------------------------------------


def test_remove_registered_removes_files_and_folders_and_forgets_them(tmp_path):
    file, folder, missing = tmp_path / "a.tmp", tmp_path / "d", tmp_path / "never-created"
    file.write_text("x")
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f").write_text("y")
    for path in (file, folder, missing):
        interrupts.register(path)
    interrupts.remove_registered()
    assert not file.exists() and not folder.exists()
    assert not {file, folder, missing} & set(interrupts.registered())
    assert (tmp_path).exists()


def test_unregistered_paths_are_kept(tmp_path):
    file = tmp_path / "result.onnx"
    file.write_text("x")
    interrupts.register(file)
    interrupts.unregister(file)
    interrupts.remove_registered()
    assert file.exists()


def test_temporary_directory_is_registered_while_it_exists():
    with interrupts.temporary_directory("graphkit-test-") as folder:
        assert folder.is_dir() and folder.name.startswith("graphkit-test-")
        assert folder in interrupts.registered()
    assert not folder.exists()
    assert folder not in interrupts.registered()


def test_atomic_output_registers_its_temporary_file_while_in_use(tmp_path):
    with atomic_output(tmp_path / "model.onnx", force=False) as tmp:
        assert tmp in interrupts.registered()
        tmp.write_text("done")
    assert tmp not in interrupts.registered()
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "other.onnx", force=False) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("failed")
    assert tmp not in interrupts.registered()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


# --- real processes, real signals ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["sleep", "busy", "blocked", "silenced"])
def test_sigint_exits_130_with_one_line_and_removes_temporary_files(tmp_path, mode):
    proc, out, tmp, folder = _child(tmp_path, mode)
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = _finish(proc)
    assert (code, stderr) == (130, ONE_LINE)
    assert "not interrupted" not in stdout
    assert not tmp.exists() and not folder.exists()
    _assert_clean(tmp_path, out)


def test_a_full_stdout_pipe_does_not_hold_the_exit(tmp_path):
    proc, out, tmp, folder = _child(tmp_path, "flooding")
    time.sleep(0.2)  # stdout is not read from here on: the child blocks writing, holding its lock
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the exit waited for stdout's reader")
    assert (code, proc.stderr.read().decode()) == (130, ONE_LINE)
    assert not tmp.exists() and not folder.exists()
    _assert_clean(tmp_path, out)
    proc.communicate()


@pytest.mark.parametrize("mode", ["sleep", "blocked"])
def test_sigterm_exits_143(tmp_path, mode):
    proc, out, _, _ = _child(tmp_path, mode)
    proc.send_signal(signal.SIGTERM)
    code, _, stderr = _finish(proc)
    assert (code, stderr) == (143, ONE_LINE)
    _assert_clean(tmp_path, out)


@pytest.mark.parametrize("mode", ["sleep", "busy", "blocked"])
@pytest.mark.parametrize("gap", [0.0, 0.0005, 0.005])
def test_a_second_signal_soon_after_the_first_changes_nothing(tmp_path, mode, gap):
    proc, out, _, _ = _child(tmp_path, mode)
    proc.send_signal(signal.SIGINT)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        time.sleep(gap)
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            break
    code, _, stderr = _finish(proc)
    # Both signals can be pending when the first handler runs; either one may win.
    assert code in (130, 143) and stderr == ONE_LINE, (code, stderr)
    _assert_clean(tmp_path, out)


@pytest.mark.parametrize("mode", ["sleep", "blocked"])
def test_an_interrupt_waits_for_the_end_of_a_deferred_block(tmp_path, mode):
    script = tmp_path / "child.py"
    script.write_text(DEFERRED_CHILD)
    proc = _start([str(script), mode], tmp_path)
    _read_until_ready(proc)
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = _finish(proc)
    assert (code, stderr) == (130, ONE_LINE)
    created = Path(stdout.split()[0])  # made and registered after the signal arrived
    assert created.name.startswith("graphkit-deferred-") and not created.exists()
    assert "not interrupted" not in stdout
    assert list((tmp_path / "tmp").iterdir()) == []


def _run_code(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``python -c code`` to its end in the test's folder, with its private TMPDIR."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=120,
    )


def test_main_keeps_exit_codes_runs_atexit_and_skips_interpreter_teardown(tmp_path):
    # In the interpreter's teardown (TensorFlow's destructors: seconds) SIGINT kills the
    # process with no message, so main() ends with os._exit once the atexit functions ran.
    code = (
        "import atexit, os, sys\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "class Teardown:\n"
        "    def __del__(self):\n"
        "        os.write(1, b'teardown ran\\n')\n"
        "keep = Teardown()\n"
        "sys.argv = ['graphkit', 'inspect', 'missing.keras']\n"
        "from graphkit.cli import main\n"
        "main()\n"
    )
    result = _run_code(code, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: missing.keras: no such file\n"
    assert result.stdout == "atexit ran\n"


def test_a_keyboard_interrupt_that_reaches_a_command_is_one_line_and_exit_130(monkeypatch):
    # In-process (no install()): what library users and CliRunner get.
    from typer.testing import CliRunner

    import graphkit.io
    from graphkit.cli import app

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(graphkit.io, "check_model_file", interrupted)
    result = CliRunner().invoke(app, ["inspect", "model.keras"])
    assert result.exit_code == 130
    assert result.stderr == ONE_LINE
    assert "Traceback" not in result.output


def test_under_main_a_keyboard_interrupt_exits_like_a_signal(tmp_path):
    # A library that put back Python's own SIGINT handler: the CLI still removes its files.
    leftover = tmp_path / "leftover.tmp"
    code = (
        "import sys\n"
        "import graphkit.io\n"
        "from graphkit import interrupts\n"
        "def interrupted(path):\n"
        f"    open({str(leftover)!r}, 'w').close()\n"
        f"    interrupts.register({str(leftover)!r})\n"
        "    raise KeyboardInterrupt\n"
        "graphkit.io.check_model_file = interrupted\n"
        "sys.argv = ['graphkit', 'inspect', 'model.keras']\n"
        "from graphkit.cli import main\n"
        "main()\n"
    )
    result = _run_code(code, tmp_path)
    assert (result.returncode, result.stderr) == (130, ONE_LINE)
    assert not leftover.exists()


# --- the real CLI ---------------------------------------------------------------------------


def _export(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "out"
    out.mkdir()
    model = FIXTURES / "sequential.keras"
    args = ["-m", "graphkit", "export", str(model), "--onnx", "-o", str(out / "model.onnx")]
    return _start(args, tmp_path, cwd=ROOT), out


def _poll(proc: subprocess.Popen, found, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"export exited {proc.returncode} before {what}: {err.decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never saw {what}")
        time.sleep(0.002)


def test_cli_interrupted_while_tensorflow_loads(tmp_path):
    proc, out = _export(tmp_path)
    maps = Path(f"/proc/{proc.pid}/maps")
    if not maps.exists():
        proc.kill()
        pytest.skip("needs /proc")

    def tensorflow_loading() -> bool:
        try:
            return "libtensorflow" in maps.read_text()
        except OSError:
            return False

    _poll(proc, tensorflow_loading, "TensorFlow's library loaded")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = _finish(proc)
    assert (code, stderr, stdout) == (130, ONE_LINE, "")
    assert time.monotonic() - sent < 10  # does not wait for the import to finish
    _assert_clean(tmp_path, out)


def test_cli_interrupted_while_writing_the_output(tmp_path):
    proc, out = _export(tmp_path)
    # atomic_output's temporary file exists from onnx.save_model until verification ends.
    _poll(proc, lambda: any(".tmp" in p.name for p in out.iterdir()), "the temporary file")
    proc.send_signal(signal.SIGINT)
    code, stdout, stderr = _finish(proc)
    assert (code, stderr) == (130, ONE_LINE)
    assert "verified" not in stdout
    _assert_clean(tmp_path, out)
