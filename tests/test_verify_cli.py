"""verify/run/export/bench through the CLI: reports on exit 2, --save and replay, --range,
outputs that must never replace an input."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from graphkit import examples
from graphkit.verification.testdata import TestDataWriter, read_test_data
from tests.cli_helpers import error_line, invoke


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny Sequential models (same architecture, other weights) saved as .keras."""
    folder = tmp_path_factory.mktemp("models")
    a, b = folder / "a.keras", folder / "b.keras"
    examples.sequential(seed=0, vocab=20, dim=2, length=4).save(a)
    examples.sequential(seed=5, vocab=20, dim=2, length=4).save(b)
    return a, b


@pytest.fixture(scope="module")
def gather_onnx(tmp_path_factory):
    """A hand-built ONNX model: tokens int64 (N, 4) -> Gather from a 20x2 table -> out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).standard_normal((20, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "tokens"], ["out"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [None, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, 2])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("onnx") / "gather.onnx"
    onnx.save(model, path)
    return path, table


# --- 1. CI gets a report on exit 2 too ------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["missing model", "bad option", "library error"],
)
def test_exit_2_still_writes_json_and_junit(case, models, tmp_path):
    a, _ = models
    junit = tmp_path / "report.xml"
    args = {
        "missing model": [a, tmp_path / "nope.keras"],
        "bad option": [a, a, "--samples", "0"],
        # two inputs vs one: the library refuses once both models are loaded
        "library error": [a, _multi_input_model(tmp_path)],
    }[case]
    result = invoke("verify", *args, "--json", "--junit", junit)
    message = error_line(result)
    report = json.loads(result.stdout)
    assert report["status"] == "error" and report["error"] == message
    assert report["reference"] == str(args[0])
    suite = ET.parse(junit).getroot()
    assert suite.get("errors") == "1" and suite.get("failures") == "0"
    errors = suite.findall(".//testcase/error")
    assert len(errors) == 1 and errors[0].get("message") == message


def _multi_input_model(tmp_path):
    path = tmp_path / "multi.keras"
    examples.multi_io_shared(seed=0, vocab=10, dim=2).save(path)
    return path


def test_exit_2_without_json_prints_only_the_error_line(models, tmp_path):
    a, _ = models
    result = invoke("verify", a, tmp_path / "nope.keras")
    assert "no such file" in error_line(result)
    assert result.stdout == ""


def test_json_status_says_equivalent_or_not(models, tmp_path):
    a, b = models
    same = invoke("verify", a, a, "--samples", "8", "--json")
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["status"] == "equivalent"
    junit = tmp_path / "j.xml"
    other = invoke("verify", a, b, "--samples", "8", "--json", "--junit", junit)
    assert other.exit_code == 1, other.output
    assert json.loads(other.stdout)["status"] == "not-equivalent"
    assert ET.parse(junit).getroot().get("failures") == "2"  # the output and the weights


# --- outputs never replace an input -------------------------------------------------------


def _spellings(path):
    """The same file, spelled another way: with `..`, and through a symlink."""
    sub = path.parent / "sub"
    sub.mkdir(exist_ok=True)
    link = path.parent / f"link-{path.name}"
    if not link.exists():
        os.symlink(path, link)
    return [path, sub / ".." / path.name, link]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_junit_never_replaces_a_model_or_the_inputs_file(which, models, tmp_path):
    a, _ = models
    model = tmp_path / "m.keras"
    model.write_bytes(a.read_bytes())
    inputs = tmp_path / "x.npz"
    np.savez(inputs, tokens=np.zeros((2, 4), dtype=np.int32))
    for target in (model, inputs):
        before = target.read_bytes()
        junit = _spellings(target)[which]
        for force in ([], ["--force"]):
            result = invoke("verify", model, a, "--inputs", inputs, "--junit", junit, *force)
            assert "--junit" in error_line(result) and "is the input" in error_line(result)
            assert target.read_bytes() == before


def test_run_output_never_replaces_its_inputs(gather_onnx, tmp_path):
    model, _ = gather_onnx
    inputs = tmp_path / "x.npz"
    np.savez(inputs, tokens=np.ones((2, 4), dtype=np.int64))
    before = inputs.read_bytes()
    for spelled in _spellings(inputs):
        result = invoke("run", model, "--inputs", inputs, "-o", spelled, "--force")
        assert "is the input" in error_line(result)
    assert inputs.read_bytes() == before
    ok = invoke("run", model, "--inputs", inputs, "-o", tmp_path / "y.npz")
    assert ok.exit_code == 0, ok.output


# --- 2. something to replay ---------------------------------------------------------------


def _write_test_data(folder, tokens, out):
    writer = TestDataWriter(folder, ["tokens"], ["out"])
    writer.add({"tokens": tokens}, {"out": out}, {"out": out + 1})
    return writer.close({"status": "test"})


def test_writer_layout_round_trip_and_cap(tmp_path):
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(1)
    writer = TestDataWriter(tmp_path / "d", ["a", "b"], ["y", "z"], max_samples=10)
    batches = []
    for _ in range(3):
        batch = {"a": rng.integers(0, 9, (4, 3)), "b": rng.standard_normal((4,)).astype("f4")}
        ref = {"y": rng.standard_normal((4, 2)), "z": rng.standard_normal((4,))}
        cand = {"y": ref["y"] + 1, "z": ref["z"]}
        writer.add(batch, ref, cand)
        batches.append((batch, ref, cand))
    saved = writer.close({"status": "equivalent"})
    assert (saved.samples, saved.total) == (10, 12)
    assert "first 10 of 12" in saved.note()
    folder = tmp_path / "d" / "test_data_set_0"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["input_0.pb", "input_1.pb", "output_0.pb", "output_1.pb"]
        + ["candidate_output_0.pb", "candidate_output_1.pb"]
    )
    joined = {k: np.concatenate([b[0][k] for b in batches])[:10] for k in ("a", "b")}
    for i, name in enumerate(("a", "b")):
        t = onnx.load_tensor(str(folder / f"input_{i}.pb"))
        assert t.name == name
        np.testing.assert_array_equal(numpy_helper.to_array(t), joined[name])
    cand_y = onnx.load_tensor(str(folder / "candidate_output_0.pb"))
    ref_y = onnx.load_tensor(str(folder / "output_0.pb"))
    assert cand_y.name == ref_y.name == "y"
    np.testing.assert_array_equal(numpy_helper.to_array(cand_y), numpy_helper.to_array(ref_y) + 1)
    record = json.loads((tmp_path / "d" / "report.json").read_text())
    assert record["status"] == "equivalent" and record["saved"]["samples"] == 10
    back = read_test_data(tmp_path / "d", ["a", "b"])
    assert list(back) == ["a", "b"]
    for name in back:
        np.testing.assert_array_equal(back[name], joined[name])
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folder left


def test_writer_keeps_at_most_max_bytes_and_says_so(tmp_path):
    writer = TestDataWriter(tmp_path / "d", ["x"], ["y"], max_bytes=1000)
    for _ in range(4):  # 8 + 8 + 8 bytes per sample: 41 samples fit in 1000 bytes
        x = np.ones((16, 1))
        writer.add({"x": x}, {"y": x}, {"y": x})
    saved = writer.close()
    assert (saved.samples, saved.total) == (1000 // 24, 64)
    assert any("MiB" in note for note in saved.notes)
    assert read_test_data(tmp_path / "d")["x"].shape == (1000 // 24, 1)


def test_writer_refuses_clobbering_and_force_replaces_only_its_own_folder(tmp_path):
    tokens, out = np.zeros((2, 4), np.int64), np.zeros((2, 4, 2), np.float32)
    _write_test_data(tmp_path / "d", tokens, out)
    with pytest.raises(Exception, match="not empty .pass --force"):
        TestDataWriter(tmp_path / "d", ["tokens"], ["out"])
    writer = TestDataWriter(tmp_path / "d", ["tokens"], ["out"], force=True)
    writer.add({"tokens": tokens + 3}, {"out": out}, {"out": out})
    writer.close()
    np.testing.assert_array_equal(read_test_data(tmp_path / "d")["tokens"], tokens + 3)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(Exception, match="besides test data"):
        TestDataWriter(tmp_path / "mine", ["tokens"], ["out"], force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_verify_and_run_replay_a_test_data_folder(models, gather_onnx, tmp_path):
    model, table = gather_onnx
    tokens = np.random.default_rng(2).integers(0, 20, (5, 4))
    _write_test_data(tmp_path / "d", tokens, table[tokens])
    ran = invoke("run", model, "--inputs", tmp_path / "d", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["samples"] == 5
    npz = tmp_path / "o.npz"
    assert invoke("run", model, "--inputs", tmp_path / "d", "-o", npz).exit_code == 0
    np.testing.assert_array_equal(np.load(npz)["out"], table[tokens])
    a, _ = models  # int32 tokens (N, 4), vocab 20: the int64 file is cast like any .npz
    result = invoke("verify", a, a, "--inputs", tmp_path / "d" / "test_data_set_0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"] == 5 and "test_data_set_0" in report["inputs_from"]


def _tensor_file(path, array, name):
    from onnx import numpy_helper

    path.write_bytes(numpy_helper.from_array(array, name=name).SerializeToString())


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda d: (d / "input_0.pb").write_bytes(os.urandom(64)), "not an ONNX TensorProto"),
        (lambda d: (d / "input_0.pb").write_bytes(b""), "not an ONNX TensorProto"),
        (lambda d: _tensor_file(d / "input_0.pb", np.zeros((2, 4), np.int64), "tokns"), "'tokns'"),
        (lambda d: _tensor_file(d / "input_1.pb", np.zeros((2, 4), np.int64), ""), "input_0.pb"),
        (lambda d: (d / "notes.txt").write_text("x"), "not a test-data folder"),
        (
            lambda d: [(d / f"test_data_set_{i}").mkdir() for i in (0, 1)],
            "holds 2 test data sets",
        ),
    ],
)
def test_odd_test_data_folders_are_refused_in_one_line(setup, fragment, gather_onnx, tmp_path):
    model, _ = gather_onnx
    folder = tmp_path / "d"
    folder.mkdir()
    setup(folder)
    assert fragment in error_line(invoke("run", model, "--inputs", folder))


def test_unnamed_tensors_are_taken_in_the_models_input_order(gather_onnx, tmp_path):
    model, table = gather_onnx
    folder = tmp_path / "d"
    folder.mkdir()
    tokens = np.arange(8).reshape(2, 4)
    _tensor_file(folder / "input_0.pb", tokens, "")
    npz = tmp_path / "o.npz"
    result = invoke("run", model, "--inputs", folder, "-o", npz)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(npz)["out"], table[tokens])


@pytest.mark.parametrize(
    "prepare, options, fragment",
    [
        (lambda t: (t / "d").mkdir() or (t / "d" / "f").write_text("x"), [], "not empty"),
        (lambda t: (t / "d").mkdir() or (t / "d" / "f").write_text("x"), ["--force"], "besides"),
        (lambda t: (t / "d").write_text("x"), [], "is not a folder"),
    ],
)
def test_save_refusals_come_before_tensorflow(prepare, options, fragment, models, tmp_path):
    import graphkit.cli as cli

    prepare(tmp_path)
    a, _ = models
    original = cli._tensorflow
    cli._tensorflow = lambda *args: pytest.fail("TensorFlow started although --save is wrong")
    try:
        result = invoke("verify", a, a, "--save", tmp_path / "d", *options)
    finally:
        cli._tensorflow = original
    assert fragment in error_line(result)


def test_save_never_replaces_a_folder_holding_an_input(models, tmp_path):
    a, _ = models
    folder = tmp_path / "d"
    _write_test_data(folder, np.zeros((2, 4), np.int64), np.zeros((2, 4, 2), np.float32))
    inside = folder / "m.keras"
    inside.write_bytes(a.read_bytes())  # makes the folder foreign too: check the input rule
    result = invoke("verify", a, a, "--inputs", folder, "--save", folder, "--force")
    assert "holds the input" in error_line(result) or "besides" in error_line(result)
    inside.unlink()
    result = invoke("verify", a, a, "--inputs", folder, "--save", folder, "--force")
    assert "holds the input" in error_line(result)
    assert read_test_data(folder)["tokens"].shape == (2, 4)


def test_verify_save_then_replay_gives_the_same_report(models, tmp_path):
    a, b = models
    folder = tmp_path / "case"
    first = invoke("verify", a, b, "--samples", "12", "--save", folder, "--json")
    assert first.exit_code == 1, first.output
    files = sorted(p.name for p in (folder / "test_data_set_0").iterdir())
    assert files == ["candidate_output_0.pb", "input_0.pb", "output_0.pb"]
    assert json.loads((folder / "report.json").read_text())["status"] == "not-equivalent"
    replay = invoke("verify", a, b, "--inputs", folder, "--json")
    assert replay.exit_code == 1, replay.output
    one, two = json.loads(first.stdout), json.loads(replay.stdout)
    assert two["samples"] == one["samples"] >= 12  # all of them: under the writer's cap
    worst = [[o["max_abs_error"], o["worst_index"]] for o in one["outputs"]]
    assert worst == [[o["max_abs_error"], o["worst_index"]] for o in two["outputs"]]
    import keras

    saved = read_test_data(folder, ["tokens"])["tokens"]
    from onnx import load_tensor, numpy_helper

    ref = numpy_helper.to_array(load_tensor(str(folder / "test_data_set_0" / "output_0.pb")))
    expected = np.asarray(keras.saving.load_model(a)(saved))
    np.testing.assert_allclose(ref, expected, rtol=1e-6, atol=1e-6)


# --- 3. --range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["verify", "{a}", "{a}"],
        ["export", "{a}", "--onnx", "-o", "{tmp}/x.onnx"],
        ["bench", "{a}"],
        ["run", "{onnx}", "--inputs", "{tmp}/i.npz"],
    ],
)
@pytest.mark.parametrize(
    "text, fragment",
    [("tokens", "expected NAME=LOW:HIGH"), ("tokens=5:2", "HIGH must be above LOW")],
)
def test_range_syntax_errors_come_before_tensorflow(
    command, text, fragment, models, gather_onnx, tmp_path
):
    import graphkit.cli as cli

    values = {"a": models[0], "onnx": gather_onnx[0], "tmp": tmp_path}
    args = [str(x).format(**values) for x in command]
    original = cli._tensorflow
    cli._tensorflow = lambda *args: pytest.fail("TensorFlow started although --range is wrong")
    try:
        result = invoke(*args, "--range", text)
    finally:
        cli._tensorflow = original
    assert fragment in error_line(result)


def test_run_applies_ranges_to_the_inputs(gather_onnx, tmp_path):
    model, _ = gather_onnx
    inputs = tmp_path / "i.npz"
    np.savez(inputs, tokens=np.full((2, 4), 7, dtype=np.int64))
    assert invoke("run", model, "--inputs", inputs, "--range", "tokens=0:20").exit_code == 0
    narrow = invoke("run", model, "--inputs", inputs, "--range", "tokens=0:5")
    assert "index 7" in error_line(narrow)
    unknown = invoke("run", model, "--inputs", inputs, "--range", "tokns=0:5")
    assert "'tokns'" in error_line(unknown) and "no such input" in error_line(unknown)
    # past the 20 rows the model reads: the range rules (a model may hash or clip its
    # indices), and run says that past the rows, direct lookups are not valid
    past = invoke("run", model, "--inputs", inputs, "--range", "tokens=0:1000")
    assert past.exit_code == 0, past.output
    assert "note: input 'tokens': the given range 0:1000 replaces 0:20" in past.stdout
    assert "indices past those rows are not valid" in past.stdout


def test_bench_synthesizes_within_the_range(gather_onnx, monkeypatch):
    import graphkit.verification as verification

    model, _ = gather_onnx
    seen = []
    real = verification.synthesize

    def spy(specs, *args, **kwargs):
        for batch in real(specs, *args, **kwargs):
            seen.append(batch["tokens"])
            yield batch

    monkeypatch.setattr(verification, "synthesize", spy)
    result = invoke("bench", model, "--runs", "1", "--batch", "64", "--range", "tokens=3:5")
    assert result.exit_code == 0, result.output
    values = np.unique(np.concatenate([s.ravel() for s in seen]))
    assert set(values.tolist()) <= {3, 4} and len(values) >= 1


def _int_features_model(path):
    """An integer input cast to float and read by a Dense: no table gives its range."""
    import keras

    x = keras.Input((3,), dtype="int32", name="counts")
    y = keras.layers.Dense(2, name="head")(keras.ops.cast(x, "float32"))
    keras.Model(x, y).save(path)


def test_verify_and_export_take_a_range_for_an_input_without_a_table(tmp_path):
    model = tmp_path / "counts.keras"
    _int_features_model(model)
    result = invoke("verify", model, model, "--samples", "8", "--range", "counts=2:9", "--json")
    assert result.exit_code == 0, result.output
    exported = invoke(
        "export", model, "--onnx", "-o", tmp_path / "c.onnx", "--range", "counts=2:9", "--json"
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["verify"]["equivalent"] is True


def test_an_existing_junit_report_is_replaced_only_with_force(models, tmp_path):
    a, _ = models
    junit = tmp_path / "report.xml"
    junit.write_text("earlier report")
    refused = invoke("verify", a, a, "--samples", "4", "--junit", junit)
    assert refused.exit_code == 2 and "already exists" in error_line(refused)
    assert junit.read_text() == "earlier report"  # untouched
    forced = invoke("verify", a, a, "--samples", "4", "--junit", junit, "--force")
    assert forced.exit_code == 0, forced.output
    assert ET.parse(junit).getroot().get("failures") == "0"


def test_junit_never_replaces_external_data_or_a_file_in_a_replay_folder(models, tmp_path):
    """An ONNX model's external-data file and the files of an --inputs DIR are inputs too."""
    import graphkit

    a, _ = models
    big = tmp_path / "big.keras"  # a table of 1 KiB or more goes to the external-data file
    examples.sequential(seed=0, vocab=200, dim=4, length=4).save(big)
    onnx_path = tmp_path / "a.onnx"
    graphkit.export_onnx(big, onnx_path, external_data=True, samples=4)
    data = tmp_path / "a.onnx.data"
    assert data.is_file()
    before = data.read_bytes()
    result = invoke("verify", big, onnx_path, "--samples", "4", "--junit", data, "--force")
    assert "is the input" in error_line(result) and data.read_bytes() == before
    saved = tmp_path / "saved"
    assert invoke("verify", a, a, "--samples", "4", "--save", saved).exit_code == 0
    inside = saved / "test_data_set_0" / "input_0.pb"
    before = inside.read_bytes()
    result = invoke("verify", a, a, "--inputs", saved, "--junit", inside, "--force")
    assert "is the input" in error_line(result) or "inside the input folder" in error_line(result)
    assert inside.read_bytes() == before


def test_range_values_must_fit_the_input_and_a_replaced_range_is_noted(models):
    a, _ = models
    too_big = invoke("verify", a, a, "--range", "tokens=0:99999999999999999999")
    assert "does not fit the input's type" in error_line(too_big)
    import graphkit

    report = graphkit.verify(a, a, samples=4, ranges={"tokens": (0, 5)})
    assert any("replaces 0:20, the rows of" in n for n in report.notes)


def test_json_report_on_a_usage_error(models):
    a, _ = models
    result = invoke("verify", a, a, "--json", "--bogus")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["status"] == "error" and "--bogus" in error_line(result)
