"""--timeout stops run, verify and bench cleanly: one error line, exit 2, CI reports written,
no temporary files left; a run that ends in time is unaffected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import FIXTURES


def endless_loop_model(path) -> None:
    """An ONNX Loop of 10**12 steps: a few hundred bytes that run until stopped."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [None]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [None]),
        ],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        [
            helper.make_tensor("trips", TensorProto.INT64, [], [10**12]),
            helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def graphkit(*args, tmp):
    env = {**os.environ, "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def endless(tmp_path):
    model = tmp_path / "endless.onnx"
    endless_loop_model(model)
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros((1,), np.float32))
    work = tmp_path / "tmp"
    work.mkdir()
    return model, inputs, work


def test_run_is_stopped_cleanly(endless, tmp_path):
    model, inputs, work = endless
    out = tmp_path / "out.npz"
    done = graphkit("run", model, "--inputs", inputs, "-o", out, "--timeout", "1.5", tmp=work)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: stopped after 1.5 s (--timeout 1.5)"]
    assert not out.exists() and not any(p.name.startswith("graphkit") for p in work.iterdir())


def test_verify_still_writes_its_ci_reports(endless, tmp_path):
    model, inputs, work = endless
    junit = tmp_path / "verify.xml"
    done = graphkit(
        "verify",
        model,
        model,
        "--inputs",
        inputs,
        "--timeout",
        "2",
        "--json",
        "--junit",
        junit,
        tmp=work,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().endswith("error: stopped after 2 s (--timeout 2)")
    report = json.loads(done.stdout)
    assert report["status"] == "error" and "--timeout 2" in report["error"]
    assert ET.parse(junit).getroot().get("errors") == "1"


def test_a_run_that_ends_in_time_is_unaffected_and_bad_values_are_refused(tmp_path):
    model = FIXTURES / "masked_lstm.keras"
    done = graphkit("verify", model, model, "--samples", "4", "--timeout", "300", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    bad = graphkit("run", model, "--inputs", "x.npz", "--timeout", "0", tmp=tmp_path)
    assert bad.returncode == 2 and "--timeout must be" in bad.stderr
