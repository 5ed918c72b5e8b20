"""verify in shards (issue 20): shards merge into the single run's report, figure for figure;
a missing, duplicated or foreign shard is refused by name; Ray runs them and survives a
worker killed mid-run."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import graphkit
from graphkit import GraphkitError
from graphkit.verification.shards import merge_reports, merge_stats, parse_shard
from graphkit.verification.stats import OutputStats
from tests.cli_helpers import invoke
from tests.conftest import FIXTURES

SAMPLES, BATCH = 100, 16  # 7 batches: 3 shards split them 2/2/3, 8 shards leave one empty


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """a.keras (masked LSTM), b.keras (one head bias moved by 1e-3: differs), a.onnx (its
    export: within the earned tolerance), tokens.npz (100 samples of 9 tokens)."""
    from graphkit import examples
    from graphkit.io import load_model, save_model
    from graphkit.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("shards")
    save_model(examples.masked_lstm(0), folder / "a.keras")
    changed = load_model(folder / "a.keras")
    weights = changed.get_layer("head").get_weights()
    weights[1] = weights[1] + np.array([1e-3, 0.0], "float32")  # softmax: one logit only
    changed.get_layer("head").set_weights(weights)
    save_model(changed, folder / "b.keras")
    export_onnx(folder / "a.keras", folder / "a.onnx", verify=False)
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 300, size=(SAMPLES, 9)).astype("int32")
    tokens[:, 6:] = 0  # padding, so that the mask matters
    np.savez(folder / "tokens.npz", tokens=tokens)
    return folder


def _shards(ref, cand, inputs, n: int, **options) -> list[dict]:
    """Each shard's report, through JSON as ``verify --shard I/N --json`` writes it."""
    return [
        json.loads(
            json.dumps(graphkit.verify(ref, cand, inputs, shard=f"{i}/{n}", **options).to_dict())
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("candidate", ["b.keras", "a.onnx"])
@pytest.mark.parametrize("source", ["synthesized", "file"])
def test_merge_equals_the_single_run(models, candidate, source):
    ref, cand = models / "a.keras", models / candidate
    inputs = models / "tokens.npz" if source == "file" else None
    options = dict(samples=SAMPLES, batch_size=BATCH)
    single = graphkit.verify(ref, cand, inputs, **options)
    assert single.equivalent == (candidate == "a.onnx"), single.format()
    if candidate == "b.keras":
        assert single.divergence is not None and not single.weights.ok
    else:
        assert not single.exact and single.outputs[0].max_abs > 0  # a worst element to merge
    expected = single.to_dict()
    for n in (1, 3, 8):
        parts = _shards(ref, cand, inputs, n, **options)
        sizes = [p["samples"] for p in parts]
        assert sum(sizes) == single.samples
        if n == 3:
            assert len(set(sizes)) > 1, sizes  # an uneven split
        if n == 8:
            assert 0 in sizes, sizes  # more shards than batches: an empty one
        merged = merge_reports(list(reversed(parts)))  # in any order
        assert merged.to_dict() == expected, n
        assert merged.format() == single.format()
        assert merged.to_junit() == single.to_junit()


def test_stats_merge_ties_like_one_run():
    """Equal maxima in two shards: the earliest element wins, as in one run; a NaN
    mismatch (an infinite error) and the counts carry over."""
    rng = np.random.default_rng(0)
    ref = rng.integers(-8, 8, size=(12, 3)) / 4  # + 0.5 exactly: true ties
    tied = ref.copy()
    tied[2, 1] += 0.5
    tied[9, 0] += 0.5  # the same error, later
    with_nan = tied.copy()
    with_nan[7, 2] = np.nan
    for cand, worst in ((tied, (2, 1)), (with_nan, (7, 2))):
        one = OutputStats("y", 1e-6, 1e-6)
        for start in range(0, 12, 2):
            one.update(ref[start : start + 2], cand[start : start + 2], start)
        assert one.worst_index == worst
        for cut in ([0, 4, 12], [0, 2, 6, 10, 12], [0, 12], [0, 0, 12, 12]):
            parts = []
            for a, b in zip(cut, cut[1:]):
                s = OutputStats("y", 1e-6, 1e-6)
                for start in range(a, b, 2):
                    s.update(ref[start : start + 2], cand[start : start + 2], start)
                parts.append(s)
            assert merge_stats(parts).to_dict() == one.to_dict(), cut


def test_cli_shards_then_merge_give_the_single_runs_report_and_exit(models, tmp_path):
    ref, cand = models / "a.keras", models / "b.keras"
    common = ["--samples", SAMPLES, "--batch-size", BATCH]
    single = invoke("verify", ref, cand, *common)
    assert single.exit_code == 1, single.output
    paths = []
    for i in range(3):
        result = invoke("verify", ref, cand, *common, "--shard", f"{i}/3", "--json")
        assert result.exit_code in (0, 1), result.output
        paths.append(tmp_path / f"s{i}.json")
        paths[-1].write_text(result.stdout)
    merged = invoke("verify", "--merge", *paths)
    assert merged.exit_code == 1, merged.output
    assert merged.stdout == single.stdout
    merged_json = invoke("verify", "--merge", *paths, "--json", "--junit", tmp_path / "m.xml")
    single_json = invoke("verify", ref, cand, *common, "--json", "--junit", tmp_path / "s.xml")
    assert merged_json.exit_code == single_json.exit_code == 1
    assert json.loads(merged_json.stdout) == json.loads(single_json.stdout)
    assert (tmp_path / "m.xml").read_text() == (tmp_path / "s.xml").read_text()
    # refusals, by name, exit 2
    missing = invoke("verify", "--merge", paths[0], paths[2])
    assert missing.exit_code == 2 and "error: --merge: missing shard 1/3 (of 3)" in missing.output
    twice = invoke("verify", "--merge", paths[0], paths[1], paths[1], paths[2])
    assert twice.exit_code == 2 and "shard 1/3 given twice" in twice.output
    other = tmp_path / "other.json"
    result = invoke("verify", ref, cand, *common, "--seed", 7, "--shard", "1/3", "--json")
    other.write_text(result.stdout)
    foreign = invoke("verify", "--merge", paths[0], other, paths[2], "--json")
    assert foreign.exit_code == 2 and "is a shard of another run" in foreign.output
    assert json.loads(foreign.stdout)["status"] == "error"
    whole = tmp_path / "whole.json"
    whole.write_text(single_json.stdout)
    plain = invoke("verify", "--merge", whole)
    assert plain.exit_code == 2 and "not a shard report" in plain.output


def test_shard_usage_errors(models):
    ref, cand = models / "a.keras", models / "b.keras"
    for text in ("3/3", "1", "-1/2", "0/0"):
        with pytest.raises(GraphkitError, match="shard"):
            parse_shard(text)
    bad = invoke("verify", ref, cand, "--shard", "3/3")
    assert bad.exit_code == 2 and "error: --shard 3/3: I must be in 0..N-1" in bad.output
    both = invoke("verify", ref, cand, "--shard", "0/2", "--ray")
    assert both.exit_code == 2 and "not both" in both.output
    lone = invoke("verify", ref, cand, "--shards", "2")
    assert lone.exit_code == 2 and "--shards needs --ray" in lone.output
    three = invoke("verify", ref, cand, ref)
    assert three.exit_code == 2 and "verify takes two models, got 3" in three.output
    with pytest.raises(GraphkitError, match="save= with shard="):
        graphkit.verify(ref, cand, shard="0/2", save=models / "saved")


def test_missing_ray_is_one_line(monkeypatch):
    from graphkit.verification import ray_runner

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(GraphkitError, match=r"pip install 'keras-graphkit\[ray\]'"):
        ray_runner.verify_on_ray("a.keras", "b.keras")
    result = invoke("verify", FIXTURES / "sequential.keras", FIXTURES / "sequential.keras", "--ray")
    assert result.exit_code == 2
    assert "error: verify --ray needs Ray: pip install 'keras-graphkit[ray]'" in result.output


# ----------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3"}},
    )
    yield ray
    ray.shutdown()


def _crasher(folder, name: str, once: bool):
    """A module (``imports=``) that kills the worker importing it: the first time only, or
    always. It runs inside the shard, after the task started: a worker dying mid-run."""
    marker = folder / f"{name}.done"
    path = folder / f"{name}.py"
    check = f"not os.path.exists({str(marker)!r})" if once else "True"
    path.write_text(
        "import os, signal\n"
        f"if {check}:\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    return path, marker


def test_ray_gives_the_single_run_and_survives_a_killed_worker(models, local_ray, tmp_path):
    from graphkit.verification.ray_runner import verify_on_ray

    crash, marker = _crasher(tmp_path, "crash_once", once=True)
    options = dict(samples=SAMPLES, batch_size=BATCH, imports=(str(crash),))
    seen = []
    report = verify_on_ray(
        models / "a.keras",
        models / "a.onnx",
        models / "tokens.npz",
        shards=3,
        progress=lambda done, total: seen.append((done, total)),
        **options,
    )
    assert marker.exists()  # a worker was killed, and its shard retried
    single = graphkit.verify(
        models / "a.keras", models / "a.onnx", models / "tokens.npz", **options
    )
    assert report.to_dict() == single.to_dict()
    assert seen[-1] == (3, 3) and len(seen) == 3


def test_ray_shard_that_keeps_failing_is_named(models, local_ray, tmp_path):
    from graphkit.verification.ray_runner import verify_on_ray

    crash, _ = _crasher(tmp_path, "crash_always", once=False)
    with pytest.raises(GraphkitError, match=r"shard [01]/2 failed \(retried 1 times\)"):
        verify_on_ray(
            models / "a.keras",
            models / "b.keras",
            shards=2,
            max_retries=1,
            samples=20,
            imports=(str(crash),),
        )


def test_ray_user_error_in_a_shard_is_one_line(models, local_ray, tmp_path):
    from graphkit.verification.ray_runner import verify_on_ray

    with pytest.raises(GraphkitError, match=r"shard [01]/2: .*no such file"):
        verify_on_ray(models / "a.keras", models / "b.keras", tmp_path / "none.npz", shards=2)


def test_cli_ray(models, local_ray):
    cwd = os.getcwd()
    os.chdir(models)  # relative paths: the workers take them from the driver's folder
    try:
        on_ray = invoke("verify", "a.keras", "b.keras", "--samples", 40, "--ray", "--shards", 2)
        single = invoke("verify", "a.keras", "b.keras", "--samples", 40)
    finally:
        os.chdir(cwd)
    assert on_ray.exit_code == single.exit_code == 1, on_ray.output
    assert single.stdout in on_ray.stdout  # the same report (after Ray's progress lines)


def test_a_difference_found_in_a_later_shard_merges_with_its_location(models, tmp_path):
    """Row 299 of the table moved: only samples 70.. read it, so shards before the one
    holding batch 4 are exact, and the merged report locates where the single run does."""
    from graphkit.io import load_model, save_model

    changed = load_model(models / "a.keras")
    table = changed.get_layer("embedding")
    weights = table.get_weights()[0].copy()
    weights[299] += 0.01
    table.set_weights([weights])
    save_model(changed, tmp_path / "c.keras")
    tokens = np.load(models / "tokens.npz")["tokens"].copy()
    tokens[tokens == 299] = 298
    tokens[70:, 0] = 299
    np.savez(tmp_path / "late.npz", tokens=tokens)
    ref, cand, inputs = models / "a.keras", tmp_path / "c.keras", tmp_path / "late.npz"
    options = dict(batch_size=BATCH)
    single = graphkit.verify(ref, cand, inputs, **options)
    assert not single.equivalent and single.divergence is not None
    assert single.outputs[0].worst_index[0] >= 70
    for n in (3, 8):
        parts = _shards(ref, cand, inputs, n, **options)
        assert parts[0]["divergence"] is None and parts[0]["outputs"][0]["exact"]
        assert merge_reports(parts).to_dict() == single.to_dict(), n


def test_lookup_coverage_merges():
    import keras

    ids = keras.Input((3,), dtype="int64", name="ids")
    lookup = keras.layers.IntegerLookup(
        vocabulary=[7, 11, 42, 1000, 31337], output_mode="one_hot", name="lookup"
    )
    model = keras.Model(ids, keras.layers.Dense(2, name="y")(keras.layers.Flatten()(lookup(ids))))
    converted = graphkit.convert(model, "onehot-dense").model
    options = dict(samples=40, batch_size=8)
    single = graphkit.verify(model, converted, **options)
    assert single.coverage[0].kind == "lookup" and single.coverage[0].covered == 5
    parts = _shards(model, converted, None, 3, **options)
    assert merge_reports(parts).to_dict() == single.to_dict()
