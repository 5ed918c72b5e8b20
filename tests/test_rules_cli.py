"""graphkit rules: every rule and pass, as text and JSON, without importing TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from graphkit.cli import app
from graphkit.onnx_passes import PASSES
from graphkit.onnx_targets import TARGETS
from graphkit.rules import RULES


def test_text_and_json_list_the_registries():
    runner = CliRunner()
    text = runner.invoke(app, ["rules"])
    assert text.exit_code == 0
    for rule in RULES:
        assert rule.name in text.stdout and rule.summary in text.stdout
    for name in PASSES:
        assert name in text.stdout
    data = json.loads(runner.invoke(app, ["rules", "--json"]).stdout)
    assert [r["name"] for r in data["rules"]] == [r.name for r in RULES]
    assert all({"name", "target", "targets", "phase", "summary"} <= set(r) for r in data["rules"])
    assert [p["name"] for p in data["passes"]] == list(PASSES)
    assert [t["name"] for t in data["targets"]] == list(TARGETS)
    for target in TARGETS.values():
        assert all(p.split("(")[0] in PASSES for p in target.passes)
        line = next(
            line for line in text.stdout.splitlines() if line.startswith(f"  {target.name} ")
        )
        assert target.summary in line and "onehot_arithmetic" in line
    assert "onehot_arithmetic(tables=True)" in json.dumps(data["targets"])


def test_answers_without_importing_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from graphkit.cli import app\n"
        "r = CliRunner().invoke(app, ['rules', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
