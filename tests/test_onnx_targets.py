"""export --target nnapi|coreml: graphs the provider runs whole, per onnxruntime's own checker.

The issue's two models, tiny: a bag of embeddings (Embedding -> GlobalAveragePooling1D ->
Dense) and a conv text classifier (Embedding -> Conv1D -> GlobalMaxPooling1D -> Dense), each
as exported in the embedding form, the onehot-dense form and the onehot-dense form fused.
For both targets: one partition holding every node (the checker's API), outputs equal to
Keras within the ONNX tolerance and bit for bit equal to the export without --target, for
every index of the vocabulary. For CoreML, the embedding form's lookup is a GatherND (no
MatMul over the table); the one-hot form keeps the one-hot x table it asked for; the coverage
line names each lookup's form, multiply-adds per token and table bytes.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from graphkit import GraphkitError
from graphkit.cli import app
from graphkit.conversion import convert
from graphkit.onnx_export import export_onnx
from graphkit.onnx_targets import (
    PROVIDER_NOTES,
    TARGETS,
    coverage,
    find_lookups,
    lookup_cost,
    lookup_form,
    plan_passes,
)
from graphkit.run import run_model
from tests.text_models import text_model

VOCAB, DIM, LENGTH, BATCH = 20, 4, 8, 2
FORMS = ["embedding", "onehot-dense", "onehot-dense-fused"]
GUARD_OPS = {"Less", "Not", "Where", "And", "GreaterOrEqual", "Equal", "OneHot"}


def _model(kind: str):
    return text_model(kind, VOCAB, DIM, LENGTH)


def _form(kind: str, form: str):
    model = _model(kind)
    return model if form == "embedding" else convert(model, "onehot-dense").model


def _every_index() -> np.ndarray:
    """Every index of the vocabulary, in whole batches of the fixed shape."""
    per_batch = BATCH * LENGTH
    batches = -(-VOCAB // per_batch)
    return np.resize(np.arange(VOCAB, dtype=np.int32), (batches * BATCH, LENGTH))


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [session.run(None, {"tokens": x[i : i + BATCH]})[0] for i in range(0, len(x), BATCH)]
    )


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["bag", "conv"])
def test_the_provider_runs_the_whole_graph_exactly(kind, form, target, tmp_path):
    model = _form(kind, form)
    x = _every_index()
    fuse = form.endswith("fused")
    shapes = {"tokens": (BATCH, LENGTH)}
    plain = export_onnx(
        model, tmp_path / "plain.onnx", fuse_onehot=fuse, fixed_shapes=shapes, verify=False
    )
    assert plain.target is None and plain.coverage is None
    out = tmp_path / "m.onnx"
    report = export_onnx(
        model, out, fuse_onehot=fuse, fixed_shapes=shapes, target=target, inputs={"tokens": x}
    )
    # onnxruntime's checker, through its API: one partition holding every node
    cov = report.coverage
    assert (cov.target, cov.provider) == (target, TARGETS[target].provider)
    assert cov.whole and cov.partitions == 1 and cov.handled == cov.nodes > 0
    assert not cov.unsupported_ops and not cov.dynamic_nodes
    assert coverage(out, target, optimize=False).whole  # the graph as written, too
    line = f"  coverage: {cov.provider} {cov.nodes}/{cov.nodes} nodes, 1 partition "
    assert [text for text in report.format().splitlines() if text.startswith(line)]
    # what the graph holds: no guard, no OneHot; a Gather on int32 indices only for NNAPI
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & GUARD_OPS
    assert ("Gather" in ops) == (target == "nnapi" and form != "onehot-dense")
    assert ("GatherND" in ops) == (target == "coreml" and form != "onehot-dense")
    # each lookup's form and cost: a row copy where the form allows it, else one-hot x table
    [lookup] = cov.lookups
    rows = VOCAB + (form == "onehot-dense-fused")  # fuse_onehot's extra all-zero row
    row_form = {"nnapi": "Gather", "coreml": "GatherND"}[target]
    onehot = form == "onehot-dense"
    assert lookup.form == ("one-hot x table" if onehot else row_form)
    assert (lookup.vocab, lookup.dim, lookup.table_bytes) == (rows, DIM, rows * DIM * 4)
    assert lookup.macs_per_token == (rows * DIM if onehot else 0) == cov.macs_per_token
    assert lookup.onehot_macs_per_token == rows * DIM
    assert f"{lookup.form} on {rows}x{DIM} ({rows * DIM * 4} B)" in report.format()
    assert report.to_dict()["coverage"]["lookups"] == [lookup.to_dict()]
    # what the provider's sources add: CoreML's GatherND builder takes constant indices only
    noted = [PROVIDER_NOTES["coreml", "GatherND"]] if lookup.form == "GatherND" else []
    assert cov.provider_notes == noted
    assert report.format().count("; note: GatherND on runtime indices") == len(noted)
    if lookup.form != "one-hot x table":  # no MatMul reads the table
        [table] = [n.input[0] for n in proto.graph.node if n.op_type.startswith("Gather")]
        assert not [n for n in proto.graph.node if n.op_type == "MatMul" and table in n.input]
    if "Gather" in ops:
        from tests.onnx_passes.helpers import assert_int32_indices

        assert_int32_indices(proto)
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [onnx.TensorProto.INT32]
    assert report.index_ranges == {"tokens": VOCAB} and report.deploy["index_dtype"] == "int32"
    # every index of the vocabulary: Keras within the ONNX tolerance, the plain export exactly
    assert report.verify.equivalent and report.verify.samples == len(x)
    got = _run(out, x)
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got, _run(tmp_path / "plain.onnx", x))


def test_ops_of_the_users_own_are_named_with_the_coverage_reached(tmp_path):
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCAB, DIM)(tokens))
    x = keras.layers.Dense(4, activation="softsign", name="mid")(x)  # Softsign: neither has it
    model = keras.Model(tokens, keras.layers.Dense(2, name="head")(x))
    for target in TARGETS:
        out = tmp_path / f"{target}.onnx"
        report = export_onnx(model, out, fixed_shapes={"tokens": (1, LENGTH)}, target=target)
        assert out.exists() and report.verify.equivalent
        cov = report.coverage
        assert cov.unsupported_ops == ["Softsign"] and not cov.whole
        assert cov.handled == cov.nodes - 1 and cov.partitions == 2
        assert f"; not handled: ops {cov.provider} lacks: Softsign" in report.format()
        assert report.to_dict()["coverage"]["unsupported_ops"] == ["Softsign"]


def test_an_input_left_dynamic_is_refused_before_tracing(tmp_path, monkeypatch):
    import graphkit.onnx_export as onnx_export

    def no_trace(*args, **kwargs):
        raise AssertionError("traced although an input was left dynamic")

    monkeypatch.setattr(onnx_export, "trace", no_trace)
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    tag = keras.Input((1,), dtype="int32", name="tag")
    x = keras.layers.Concatenate()(
        [
            keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCAB, DIM)(tokens)),
            keras.layers.Flatten()(keras.layers.Embedding(5, 2)(tag)),
        ]
    )
    model = keras.Model([tokens, tag], keras.layers.Dense(1)(x))
    with pytest.raises(GraphkitError) as info:
        export_onnx(model, tmp_path / "m.onnx", fixed_shapes={"tokens": (1, 8)}, target="nnapi")
    assert str(info.value) == (  # the Python API names its arguments, the CLI its flags
        "target='nnapi': input 'tag' has the dynamic shape (None, 1): fix it with "
        "fixed_shapes={'tag': DIMS} (NNAPI runs static shapes only)"
    )
    assert info.value.for_cli() == (
        "--target nnapi: input 'tag' has the dynamic shape (None, 1): fix it with "
        "--fixed-shape tag=DIMS (NNAPI runs static shapes only)"
    )
    with pytest.raises(GraphkitError, match=r"target='coreml' needs fixed_shapes=\{NAME: DIMS\}"):
        export_onnx(model, tmp_path / "m.onnx", target="coreml")


def test_run_and_verify_hold_the_export_to_its_input_contract(tmp_path):
    """No Gather or OneHot is left for CoreML: the range comes from the recorded contract."""
    import graphkit

    out = tmp_path / "m.onnx"
    model = _model("bag")
    export_onnx(model, out, fixed_shapes={"tokens": (BATCH, LENGTH)}, target="coreml")
    for bad, word in ((VOCAB, "out-of-vocabulary index 20"), (-1, "negative index -1")):
        x = np.zeros((BATCH, LENGTH), np.int32)
        x[1, 3] = bad
        np.save(tmp_path / "x.npy", x)
        with pytest.raises(GraphkitError, match=f"{word} at \\(1, 3\\); valid indices are 0..19"):
            run_model(out, tmp_path / "x.npy")
        with pytest.raises(GraphkitError, match=word):
            graphkit.verify(model, out, inputs={"tokens": x})
    check = graphkit.verify(model, out, samples=8)
    assert check.equivalent and "in [0, 20)" in check.describe_inputs()


def test_cli_prints_one_coverage_line_and_json_holds_it(tmp_path):
    model = tmp_path / "bag.keras"
    _model("bag").save(model)
    runner = CliRunner()
    args = ["export", str(model), "--onnx", "--target", "nnapi", "--fixed-shape", "tokens=1x8"]
    text = runner.invoke(app, [*args, "-o", str(tmp_path / "a.onnx")])
    assert text.exit_code == 0, text.output
    lines = [line for line in text.stdout.splitlines() if line.startswith("  coverage:")]
    assert len(lines) == 1 and lines[0].startswith("  coverage: NNAPI ")
    assert " 1 partition (onnxruntime's mobile usability checker); lookups: " in lines[0]
    assert lines[0].endswith(
        f" Gather on {VOCAB}x{DIM} (320 B), 0 MACs/token (one-hot x table: 80)"
    )
    assert "note: input contract: tokens in [0, 20)" in text.stdout
    data = runner.invoke(app, [*args, "-o", str(tmp_path / "b.onnx"), "--json"])
    assert data.exit_code == 0, data.output
    report = json.loads(data.stdout)
    assert report["target"] == "nnapi" and report["index_ranges"] == {"tokens": VOCAB}
    assert report["coverage"]["whole"] and report["coverage"]["provider"] == "NNAPI"
    assert report["deploy"]["index_dtype"] == "int32"
    assert [lk["form"] for lk in report["coverage"]["lookups"]] == ["Gather"]


def test_plan_puts_the_targets_passes_last_in_their_order():
    names, params = plan_passes(
        ["int32_indices"], fuse_onehot=True, fixed_shapes={"tokens": (1, 8)}, target="coreml"
    )
    assert names == [
        "fuse_onehot",
        "drop_index_guards",
        "int32_indices",
        "gather_nd",
        "onehot_arithmetic",
        "fix_shapes",
    ]
    assert params == {
        "fix_shapes": {"shapes": {"tokens": (1, 8)}},
        "onehot_arithmetic": {"tables": True},
    }
    names, params = plan_passes(fixed_shapes={"t": "1x8"}, target="nnapi", index_dtype="int32")
    assert names == list(TARGETS["nnapi"].passes) and "onehot_arithmetic" not in params
    with pytest.raises(GraphkitError, match="target=.tpu.: expected one of: nnapi, coreml"):
        plan_passes(fixed_shapes={"t": "1x8"}, target="tpu")


def test_coreml_embedding_costs_a_fraction_of_the_onehot_forms_macs(tmp_path):
    """The CLI's coverage line, both variants of the bag model: GatherND at 0 MACs per token
    where one-hot x table costs vocab x dim; both one partition, every node, verified."""
    runner = CliRunner()
    vocab, dim = 500, 16
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, dim, name="emb")(tokens)
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)))
    found = {}
    for form, m in (("embedding", model), ("onehot", convert(model, "onehot-dense").model)):
        m.save(tmp_path / f"{form}.keras")
        args = ["export", str(tmp_path / f"{form}.keras"), "--onnx", "--target", "coreml"]
        args += ["--fixed-shape", "tokens=1x8", "-o", str(tmp_path / f"{form}.onnx"), "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["coverage"]["whole"] and data["verify"]["equivalent"]
        [found[form]] = data["coverage"]["lookups"]
    assert found["embedding"]["form"] == "GatherND" and found["onehot"]["form"] == "one-hot x table"
    assert found["embedding"]["macs_per_token"] == 0
    assert found["onehot"]["macs_per_token"] == vocab * dim == 8000
    assert found["embedding"]["table_bytes"] == found["onehot"]["table_bytes"] == vocab * dim * 4
    assert found["embedding"]["onehot_macs_per_token"] == found["onehot"]["macs_per_token"]
    assert find_lookups(onnx.load(str(tmp_path / "embedding.onnx")))[0].form == "GatherND"


def test_the_lookup_form_is_the_cheapest_the_checkers_list_takes(monkeypatch):
    import graphkit.onnx_targets as targets

    coreml = TARGETS["coreml"]
    assert lookup_form(coreml) == "GatherND"  # onnxruntime 1.32's bundled list
    assert lookup_form(TARGETS["nnapi"]) == "Gather"
    assert lookup_form(coreml, {"Gather", "GatherND"}) == "Gather"
    assert lookup_form(coreml, {"MatMul"}) == "one-hot x table"
    cost = lookup_cost(20000, 64)
    assert cost["GatherND"]["macs_per_token"] == 0 and cost["GatherND"]["reads_per_token"] == 64
    assert cost["one-hot x table"]["macs_per_token"] == 1_280_000  # the figure
    shapes = {"fixed_shapes": {"t": "1x8"}, "target": "coreml"}
    # a list without GatherND: the lookups fall back to one-hot x table
    monkeypatch.setattr(targets, "listed_ops", lambda target: {"MatMul", "Relu"})
    names, params = plan_passes(**shapes)
    assert "gather_nd" not in names and params["onehot_arithmetic"] == {"tables": True}
    # a list with Gather: lookups stay Gathers, no one-hot x table
    monkeypatch.setattr(targets, "listed_ops", lambda target: {"Gather", "GatherND"})
    names, params = plan_passes(**shapes)
    assert "gather_nd" not in names and "onehot_arithmetic" not in params


def test_lower_gather_asks_for_one_hot_x_table_and_coreml_keeps_it(tmp_path):
    """--lower-gather --target coreml: the user's one-hot MatMul stays, priced in the report."""
    report = export_onnx(
        _model("bag"),
        tmp_path / "m.onnx",
        lower_gather=True,
        fixed_shapes={"tokens": (BATCH, LENGTH)},
        target="coreml",
    )
    cov = report.coverage
    assert cov.whole and report.verify.equivalent and not cov.provider_notes
    assert [(lk.form, lk.macs_per_token) for lk in cov.lookups] == [
        ("one-hot x table", VOCAB * DIM)
    ]
