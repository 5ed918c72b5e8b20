"""Ctrl-C for the CLI: exit 130 (SIGTERM: 143), one ``error: interrupted`` line, no files left.

Python turns SIGINT into a KeyboardInterrupt, which TensorFlow swallows when it lands in a
``__del__`` or a C callback ("Exception ignored in ..."), and which prints tracebacks when it
lands in interpreter shutdown. So ``install()`` (called by the CLI, never on import) replaces
the handlers: the process removes the temporary paths registered here, writes the message to
the stderr it started with (graphkit points fd 2 at /dev/null while TensorFlow talks) and
leaves with ``os._exit``. No KeyboardInterrupt is ever raised.

A Python handler runs only when the main thread next executes bytecode, which a long
TensorFlow call can delay; a daemon thread woken through ``signal.set_wakeup_fd`` does the
same exit as soon as the signal arrives, provided the main thread has released the GIL (a
C call that holds it delays both). Whichever starts first does the exit; the other waits.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

MESSAGE = "error: interrupted"
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

# Paths to remove on an interrupt, oldest first. A dict used as an ordered set: a single
# item assignment or pop is atomic under the GIL, so no lock a signal handler could wait on.
_registered: dict[str, None] = {}

_exit_lock = threading.RLock()  # held by the thread doing the exit, never released
_exiting = False
_stderr_fd: int | None = None  # a duplicate of fd 2 as it was at install()
_installed = False
_defer_lock = threading.Lock()
_defer_depth = 0
_pending: int | None = None  # a signal held back by deferred()


def register(path: str | os.PathLike) -> None:
    """Remove ``path`` (a file or a folder) if the process is interrupted."""
    _registered[os.fspath(path)] = None


def unregister(path: str | os.PathLike) -> None:
    """Forget ``path``: it is gone or it is a finished result."""
    _registered.pop(os.fspath(path), None)


def registered() -> list[Path]:
    """The paths that an interrupt would remove now."""
    return [Path(p) for p in list(_registered)]


def remove_registered() -> None:
    """Remove every registered path, newest first, and forget it; never raises.

    What an interrupt does before it exits; callable alone (tests, other exits).
    """
    for path in reversed(list(_registered)):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                _remove_tree(path)
            else:
                os.unlink(path)
        except OSError:
            pass
        _registered.pop(path, None)


# How long an interrupt keeps removing a folder that the main thread may still be filling.
TREE_SETTLE_S = 0.02
TREE_DEADLINE_S = 2.0


def _remove_tree(path: str) -> None:
    """``rmtree`` until the folder stays gone, for at most TREE_DEADLINE_S.

    When the watcher thread exits, the main thread may be inside Keras extracting an archive
    into this folder: it creates at most one more file or folder before our handler parks it
    at its next bytecode, and a single ``rmtree`` would miss that one (or fail on a folder
    that is no longer empty). So: remove, let the main thread settle, look again.
    """
    deadline = time.monotonic() + TREE_DEADLINE_S
    while True:
        shutil.rmtree(path, ignore_errors=True)
        if time.monotonic() > deadline:
            return
        time.sleep(TREE_SETTLE_S)
        if not os.path.lexists(path):
            return


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold an interrupt back while a temporary path is created and then registered.

    Without it an interrupt between ``mkstemp`` returning and ``register`` would leave the
    new file behind; inside the block the exit waits for its end (keep the block short).
    """
    global _defer_depth
    with _defer_lock:
        _defer_depth += 1
    try:
        yield
    finally:
        with _defer_lock:
            _defer_depth -= 1
            depth = _defer_depth
        if depth == 0 and _pending is not None:
            _terminate(_pending)


@contextlib.contextmanager
def temporary_directory(prefix: str = "graphkit-") -> Iterator[Path]:
    """``tempfile.TemporaryDirectory`` that an interrupt removes too; yields its Path."""
    with deferred():
        folder = tempfile.TemporaryDirectory(prefix=prefix)
        register(folder.name)
    try:
        with folder as name:
            yield Path(name)
    finally:
        unregister(folder.name)


@contextlib.contextmanager
def temporary_tempdir(prefix: str = "graphkit-work-") -> Iterator[Path]:
    """A registered temporary folder that ``tempfile`` uses as its default for the block.

    For third-party code that creates its own temporary folders (Keras extracts a model's
    assets with ``tempfile.mkdtemp()``): they land inside a folder that an interrupt removes,
    so SIGINT or SIGTERM at any moment leaves nothing behind. Main thread only (tempfile's
    default is process-wide).
    """
    with temporary_directory(prefix=prefix) as folder:
        previous = tempfile.tempdir
        tempfile.tempdir = str(folder)
        try:
            yield folder
        finally:
            tempfile.tempdir = previous


def install() -> None:
    """Make SIGINT and SIGTERM exit at once: cleanup, one message, exit 130/143 (CLI only).

    Call it once from the main thread, before the work starts. Signals that the process
    was started with ignored (``nohup``, background jobs) stay ignored.
    """
    global _installed, _stderr_fd
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(OSError):
        _stderr_fd = os.dup(2)
    caught = []
    for signum in EXIT_CODES:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue
        signal.signal(signum, _on_signal)
        caught.append(signum)
    _installed = True
    if not caught:
        return
    try:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # the C signal handler must never block
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (OSError, ValueError):
        return  # the Python handlers alone still work
    threading.Thread(
        target=_watch, args=(read_fd, frozenset(caught)), name="graphkit-interrupts", daemon=True
    ).start()


def installed() -> bool:
    """Whether ``install()`` has replaced the handlers in this process."""
    return _installed


def exit_interrupted(signum: int = signal.SIGINT) -> None:
    """Exit as an interrupt does if ``install()`` ran; return otherwise.

    For a KeyboardInterrupt that reached the CLI anyway (another handler replaced ours).
    """
    if _installed:
        _terminate(signum)


def exit_process(code: object = 0) -> NoReturn:
    """End the CLI process like Python would, minus the interpreter's shutdown.

    That shutdown restores the default SIGINT handler and runs TensorFlow's destructors
    (seconds, sometimes): an interrupt there killed the process silently or printed a
    ``__del__`` traceback. So: wait for non-daemon threads, run the atexit functions, flush
    stdout and stderr, ``os._exit`` -- with the interrupt handlers in place throughout.
    Objects still alive are not finalized: write files inside ``with`` blocks.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): Python prints it and exits 1
        with contextlib.suppress(Exception):
            print(code, file=sys.stderr)
        code = 1
    # What Python's own exit runs first: threading's exit hooks (they stop thread pools),
    # then it waits for non-daemon threads.
    shutdown_threads = getattr(threading, "_shutdown", None)
    if shutdown_threads is not None:
        shutdown_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)


def _on_signal(signum: int, frame) -> None:
    """The Python-level handler (main thread, between two bytecodes)."""
    global _pending
    if _defer_depth and not _exiting:
        _pending = signum  # deferred() exits when its block ends
        return
    _terminate(signum)


def _watch(read_fd: int, caught: frozenset[int]) -> None:
    """Daemon thread: exit as soon as the C signal handler writes the signal number."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in caught:
                deadline = time.monotonic() + 5.0
                while _defer_depth and time.monotonic() < deadline:
                    time.sleep(0.001)  # the main thread exits at the end of the block
                _terminate(signum)


def _terminate(signum: int) -> None:
    """Remove the registered paths, say ``error: interrupted``, ``os._exit``; once per process."""
    global _exiting
    if not _exit_lock.acquire(blocking=False):
        _wait_forever()  # another thread is exiting: run no more of the program
    if _exiting:  # a second signal, handled in the thread that is already exiting
        _exit_lock.release()
        return
    _exiting = True
    remove_registered()
    # Either may block: a full pipe, or stdout's lock held by the write the signal interrupted
    # (click.echo flushes each line, so stdout seldom holds anything): bound both.
    _bounded(_flush_stdout, 0.25)
    _bounded(_write_message, 1.0)
    os._exit(EXIT_CODES.get(signum, 128 + signum))


def _wait_forever() -> NoReturn:
    while True:
        time.sleep(3600)


def _bounded(func, timeout: float) -> None:
    """Run ``func`` in a helper thread; wait for it ``timeout`` seconds at most.

    A bare ``_thread`` thread: ``threading.Thread.start`` takes a module lock that the
    interrupted main thread may hold, now and forever.
    """
    done = _thread.allocate_lock()
    done.acquire()

    def run() -> None:
        try:
            func()
        finally:
            done.release()

    try:
        _thread.start_new_thread(run, ())
    except RuntimeError:  # no new threads at interpreter shutdown: only this one runs
        func()
        return
    done.acquire(timeout=timeout)


def _flush_stdout() -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()


def _write_message() -> None:
    fd = 2 if _stderr_fd is None else _stderr_fd
    text = MESSAGE + "\n"
    with contextlib.suppress(OSError):
        if os.isatty(fd):  # end a spinner's line and show the cursor that rich hid
            text = "\r\x1b[2K\x1b[?25h" + text
    data = text.encode()
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data) :]


@contextlib.contextmanager
def time_limit(seconds: float | None, message: str, code: int = 2, before=None) -> Iterator[None]:
    """Stop the process cleanly if the block still runs after ``seconds`` (``--timeout``):
    registered paths removed, ``before()`` given 2 s (CI reports), ``error: <message>`` on
    stderr, exit ``code``. A model costs what it costs (an ONNX Loop of 10**12 steps runs
    inside onnxruntime, where no Python code runs): a daemon timer, like the signal watcher,
    exits from its own thread. None: no limit."""
    if seconds is None:
        yield
        return

    def stop() -> None:
        global _exiting
        if not _exit_lock.acquire(blocking=False):
            return  # an interrupt is already exiting
        _exiting = True
        remove_registered()
        if before is not None:
            _bounded(before, 2.0)
        _bounded(_flush_stdout, 0.25)
        fd = 2 if _stderr_fd is None else _stderr_fd
        with contextlib.suppress(OSError):
            os.write(fd, f"error: {message}\n".encode())
        os._exit(code)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
