"""The documentation: commands shown with their output run and print that output; links resolve;
docs/cli.md is what the CLI says.

Run pages (README.md, docs/verification.md): every ```console block holds `$ graphkit ...`
lines, each followed by its output. Each page's blocks run in order, in one temporary folder
prepared with the models the page names, through the CLI in this process. Output is compared
line by line modulo what legitimately varies: whitespace runs (column widths), decimal numbers
(errors, tolerances, timings, output statistics), byte counts, the position of the worst
element, and how close an equivalent pair is (`exact`/`ok`, `bit for bit`/`within tolerance`:
Keras against ONNX is bit for bit on one CPU and within its earned tolerance on another).
Words, names, shapes, counts and verdicts are compared as shown. A `...` line stands for any
lines. The exit code expected is 2 for an `error:` line, 1 for `NOT EQUIVALENT`, else 0.

On the other pages, blocks that show commands are not run and must say so with a ```text fence.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from graphkit.cli import app
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
GENERATED = {DOCS / "cli.md"}  # typer's own console blocks: usage lines, not commands to run

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.M | re.S)


def blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of a Markdown file."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(path.read_text("utf-8"))]


# --- the working folders the run pages need ---------------------------------------------------


def prepare_tour(folder: Path) -> None:
    """README: the fixture the tour copies."""
    for name in ("nested.keras", "nested.npz"):
        shutil.copyfile(FIXTURES / name, folder / name)


def prepare_verification(folder: Path) -> None:
    """docs/verification.md: keras.io's transformer classifier, its one-hot conversion, a copy
    with 0.5 added to token rows 1000..1499, its ONNX export, 40 samples of tokens; the
    conv classifier that needs 149 steps."""
    import graphkit
    from graphkit import examples
    from graphkit.io import save_model

    model = examples.transformer_classifier()
    save_model(model, folder / "transformer.keras")
    save_model(
        graphkit.convert(model, to="onehot-dense").model, folder / "transformer.onehot-dense.keras"
    )
    changed = examples.transformer_classifier()
    table = changed.get_layer("tok_pos").token
    weights = table.get_weights()[0].copy()
    weights[1000:1500] += 0.5
    table.set_weights([weights])
    save_model(changed, folder / "changed.keras")
    graphkit.export_onnx(model, folder / "transformer.onnx")
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 1500, size=(40, 32)).astype("float32")
    np.savez(folder / "tokens.npz", tokens=tokens)
    save_model(examples.conv_text_classifier(), folder / "conv_text_classifier.keras")


RUN_PAGES = {"README.md": prepare_tour, "docs/verification.md": prepare_verification}


# --- comparing output modulo what varies ------------------------------------------------------

_TABLE_ROW = re.compile(  # a verify row: output shape maxabs maxrel worst >tol tolerance result
    r"^(\S+) (\d+(?:x\d+)*) \S+ \S+ (?:-|\([\d, ]+\)) (\d+/\d+) (.*)$"
)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.\d+(?:e[-+]?\d+)?|\d+e[-+]?\d+)(?![\w.])")
_CLOSE = re.compile(r"\b(?:exact|ok|bit for bit|within tolerance)\b")


def normalise(text: str) -> list[str]:
    """The lines of a command's output, with what legitimately varies masked."""
    lines = []
    for line in text.strip("\n").splitlines():
        line = " ".join(line.split())
        line = re.sub(r"\d[\d,]* bytes", "# bytes", line)
        line = re.sub(r"max abs error \S+", "max abs error #", line)
        line = re.sub(r"worst element \([\d, ]+\)", "worst element (#)", line)
        row = _TABLE_ROW.match(line)
        if row:
            line = f"{row[1]} {row[2]} # # # {row[3]} {row[4]}"
        line = _NUMBER.sub("#", line)
        lines.append(_CLOSE.sub("~close~", line))
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; an expected `...` line stands for any number of lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(f"{line}\n" for line in actual)) is not None


def commands(body: str) -> list[tuple[str, str]]:
    """(command line, output shown) for each `$ graphkit` line of a console block."""
    found: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            assert line.startswith("$ graphkit "), f"not a graphkit command: {line}"
            found.append((line[2:], []))
        else:
            assert found, f"output before any command: {line!r}"
            found[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in found]


def expected_exit_code(output: str) -> int:
    if output.lstrip().startswith("error:"):
        return 2
    return 1 if "NOT EQUIVALENT" in output else 0


def test_normalise_keeps_words_shapes_and_verdicts():
    """The masking lets numbers vary and nothing else (so the docs test can fail)."""
    shown = (
        "out     256x1  2.38e-07     2.29e-05     (145, 0)  0/256  rtol=8.29e-07 atol=1.48e-06  ok"
    )
    other = "out  256x1  0  0  -  0/256  rtol=8.3e-07 atol=1.5e-06  exact"
    assert normalise(shown) == normalise(other)
    assert normalise(shown) != normalise(shown.replace("0/256", "3/256"))
    assert normalise(shown) != normalise(shown.replace("256x1", "256x2"))
    assert normalise("EQUIVALENT (x)") != normalise("NOT EQUIVALENT (x)")
    assert normalise("opset 17, 89 nodes, 29,363 bytes, exported in 1.5 s") == normalise(
        "opset 17, 89 nodes, 29,401 bytes, exported in 0.9 s"
    )
    assert normalise("opset 17, 89 nodes") != normalise("opset 17, 90 nodes")
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])


@pytest.mark.parametrize("page", sorted(RUN_PAGES))
def test_commands_shown_print_what_is_shown(page, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    RUN_PAGES[page](tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    shown = [body for info, body in blocks(ROOT / page) if info == "console"]
    ran = 0
    for body in shown:
        for command, output in commands(body):
            result = runner.invoke(app, shlex.split(command)[1:])
            got, want = normalise(result.output), normalise(output)
            assert result.exit_code == expected_exit_code(output), f"{command}\n{result.output}"
            assert matches(want, got), f"{page}: `{command}` prints something else:\n" + "\n".join(
                difflib.unified_diff(want, got, "shown", "printed", lineterm="")
            )
            ran += 1
    assert ran >= 3, f"{page}: no commands found to run"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_not_run_are_marked_text(page):
    """A run page shows commands in ```console blocks (run above); other pages in ```text."""
    if page in GENERATED:
        return
    run_page = str(page.relative_to(ROOT)) in RUN_PAGES
    for info, body in blocks(page):
        if any(line.startswith("$ graphkit") for line in body.splitlines()):
            wanted = "console" if run_page else "text"
            assert info == wanted, f"{page.name}: a block of commands fenced ```{info}:\n{body}"
        if info == "console":
            assert run_page, f"{page.name}: ```console blocks are run only in {sorted(RUN_PAGES)}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text("utf-8"))
    return {slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    text = FENCE.sub("", page.read_text("utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        assert linked.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: link to {target}: no such heading"


def test_cli_reference_is_generated_from_the_cli():
    spec = importlib.util.spec_from_file_location(
        "make_cli_docs", ROOT / "scripts/make_cli_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "cli.md").read_text("utf-8") == module.cli_reference(), (
        "docs/cli.md differs from the CLI: run .venv/bin/python scripts/make_cli_docs.py"
    )


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text("utf-8").splitlines()) <= 260
