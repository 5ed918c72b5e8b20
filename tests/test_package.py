"""Packaging promises: cheap imports, --help without TensorFlow, console script, layer registration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120
    )


def test_import_graphkit_and_help_do_not_import_tensorflow():
    code = (
        "import sys, graphkit, graphkit.cli\n"
        "from typer.testing import CliRunner\n"
        "for args in (['--help'], ['convert', '--help'], ['inspect', '--help'], ['demo', '--help']):\n"
        "    r = CliRunner().invoke(graphkit.cli.app, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnxruntime') if m in sys.modules]\n"
        "print(bad)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_import_graphkit_then_keras_registers_layers_for_safe_mode_load():
    model = ROOT / "fixtures" / "onehot_dense.keras"
    code = (
        "import graphkit, keras\n"
        f"m = keras.saving.load_model({str(model)!r})\n"
        "print(type(m.get_layer('tokens_onehot')).__module__)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "graphkit.layers.one_hot"


def test_keras_imported_before_graphkit_also_works():
    code = "import keras, graphkit\nprint(keras.saving.get_registered_object('graphkit>OneHot').__name__)\n"
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OneHot"


def test_console_script_and_module_entry_point():
    exe = Path(sys.executable).parent / "graphkit"
    for cmd in ([str(exe), "--help"], [sys.executable, "-m", "graphkit", "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "convert" in result.stdout and "inspect" in result.stdout


def test_cli_run_prints_no_tensorflow_noise(tmp_path):
    exe = Path(sys.executable).parent / "graphkit"
    result = subprocess.run(
        [str(exe), "inspect", str(ROOT / "fixtures" / "sequential.keras")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "embedding" in result.stdout


def test_public_functions_are_not_shadowed_by_modules():
    import graphkit
    import graphkit.conversion  # noqa: F401
    import graphkit.verification  # noqa: F401

    for name in ("convert", "verify", "export_onnx", "inspect_model", "load_model", "save_model"):
        assert callable(getattr(graphkit, name)) and not isinstance(
            getattr(graphkit, name), type(graphkit)
        ), name


# The full collections that start once TensorFlow's import has begun (it is in sys.modules
# from its first line on): each scans every object the import has made so far.
_COUNT_COLLECTIONS = (
    "import gc, sys\n"
    "started = []\n"
    "gc.callbacks.append(\n"
    "    lambda phase, info: started.append(info)\n"
    "    if phase == 'start' and info['generation'] == 2 and 'tensorflow' in sys.modules\n"
    "    else None\n"
    ")\n"
)


def test_tensorflow_import_runs_no_collection_and_a_library_call_freezes_nothing():
    code = _COUNT_COLLECTIONS + (
        "from graphkit._tf import quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "print(len(started), gc.isenabled(), gc.get_freeze_count())\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    collections, enabled, frozen = result.stdout.split()
    assert (collections, enabled, frozen) == ("0", "True", "0")


def test_a_collector_the_caller_disabled_stays_disabled():
    code = (
        "import gc\n"
        "gc.disable()\n"
        "from graphkit._tf import quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "print(gc.isenabled())\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_cli_freezes_what_the_tensorflow_import_left():
    """The CLI's process moves TensorFlow's import-time objects out of the collector's reach
    (a later full collection then scans only what graphkit made): hundreds of thousands."""
    model = ROOT / "fixtures" / "sequential.keras"
    code = (
        "import gc\n"
        "from graphkit.cli import app\n"
        f"app(['inspect', {str(model)!r}], standalone_mode=False)\n"
        "print(gc.get_freeze_count(), gc.isenabled())\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    frozen, enabled = result.stdout.split()[-2:]
    assert int(frozen) > 100_000 and enabled == "True"
