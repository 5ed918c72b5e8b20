"""Running the CLI in tests: one place for what many test modules do."""

from __future__ import annotations

from typer.testing import CliRunner

from graphkit.cli import app

runner = CliRunner()


def invoke(*args):
    """``graphkit ARGS...`` in this process (arguments as strings); typer's result."""
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The one `error:` line of an exit-2 result (no traceback), without its prefix."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0][len("error: ") :]
