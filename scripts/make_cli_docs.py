"""Write docs/cli.md, the CLI reference, from the typer app itself (so that it cannot drift).

    .venv/bin/python scripts/make_cli_docs.py            # rewrites docs/cli.md
    .venv/bin/python scripts/make_cli_docs.py --check    # exit 1 when docs/cli.md differs

This is what `typer graphkit.cli utils docs --name graphkit --output docs/cli.md` writes;
tests/test_docs.py regenerates it and fails when the file differs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CLI_MD = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def cli_reference() -> str:
    """The Markdown reference of every graphkit command, as typer's ``utils docs`` makes it."""
    import typer
    import typer.cli
    import typer.main

    from graphkit.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    ctx.ensure_object(dict)
    ctx.obj[typer.cli.MARKUP_MODE_KEY] = app.rich_markup_mode
    text = typer.cli.get_docs_for_click(obj=command, ctx=ctx, name="graphkit", title=None)
    return f"{_examples_as_code(text).strip()}\n"


def _examples_as_code(text: str) -> str:
    """The epilogs' example lines (kept verbatim by click's \\b marker) as a fenced block:
    typer copies the marker, a backspace character, into the Markdown."""

    def fence(match: re.Match) -> str:
        lines = [line.strip() for line in match.group(1).splitlines()]
        return "Examples:\n\n```sh\n" + "\n".join(lines) + "\n```\n"

    return re.sub(r"Examples:\n\n\x08\n((?:  .*\n)+)", fence, text)


def main(argv: list[str]) -> int:
    text = cli_reference()
    if "--check" in argv:
        if CLI_MD.read_text(encoding="utf-8") != text:
            print(f"{CLI_MD} differs from the CLI: run scripts/make_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    CLI_MD.write_text(text, encoding="utf-8")
    print(f"wrote {CLI_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
