"""``graphkit demo``: the main job on the bundled example model, step by step."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from graphkit.errors import GraphkitError

FIXTURE = "masked_lstm"


def _fixtures_dir() -> Path | None:
    here = Path(__file__).resolve().parent.parent / "fixtures"
    return here if (here / f"{FIXTURE}.keras").is_file() else None


def run_demo(workdir: str | Path | None = None, echo: Callable[[str], None] = print) -> dict:
    """Inspect, convert to onehot-dense and back, and show that predictions are identical.

    The files go to ``workdir``, kept; without it, to a ``graphkit-demo-*`` temporary folder
    that is removed at the end, and on Ctrl-C or SIGTERM (registered with ``interrupts``).
    """
    from graphkit import interrupts

    if workdir is None:
        with interrupts.temporary_directory(prefix="graphkit-demo-") as work:
            return _run_in(work, echo, kept=False)
    work = Path(workdir)
    if work.exists() and not work.is_dir():
        raise GraphkitError(f"--workdir {work}: exists and is not a folder")
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GraphkitError(f"--workdir {work}: cannot create it ({exc.strerror})") from exc
    return _run_in(work, echo, kept=True)


def _run_in(work: Path, echo: Callable[[str], None], *, kept: bool) -> dict:
    """The demo's steps, writing into ``work``."""
    from graphkit.backends import model_feed
    from graphkit.conversion import convert_file
    from graphkit.inspect import inspect_model
    from graphkit.io import load_model

    src = work / f"{FIXTURE}.keras"
    inputs_path = work / f"{FIXTURE}.npz"
    fixtures = _fixtures_dir()
    if fixtures is not None:
        shutil.copyfile(fixtures / f"{FIXTURE}.keras", src)
        shutil.copyfile(fixtures / f"{FIXTURE}.npz", inputs_path)
        origin = f"fixtures/{FIXTURE}.keras"
    else:  # installed without the repository's fixtures: build the same model
        from graphkit import examples
        from graphkit.io import save_model

        model = examples.masked_lstm(seed=0)
        save_model(model, src, force=True)
        np.savez(inputs_path, **examples.sample_inputs(model, seed=1))
        origin = "graphkit.examples.masked_lstm()"

    echo(f"== 1. the example model ({origin}): Embedding(mask_zero=True) -> LSTM -> Dense")
    echo(inspect_model(src).format())

    onehot = work / f"{FIXTURE}.onehot-dense.keras"
    back = work / f"{FIXTURE}.onehot-dense.embedding.keras"
    for step, (source, target, out) in enumerate(
        ((src, "onehot-dense", onehot), (onehot, "embedding", back)), start=2
    ):
        echo("")
        echo(f"== {step}. graphkit convert {source.name} --to {target}")
        for f in convert_file(source, target, out, force=True).converted:
            echo(f"  {f.path} -> {' + '.join(f.new_layers)}")
        echo(f"  wrote {out}")

    echo("")
    echo("== 4. predictions on the sample inputs (padded sequences, masked)")
    data = dict(np.load(inputs_path))
    models = {
        name: load_model(p)
        for name, p in (("original", src), ("onehot-dense", onehot), ("round trip", back))
    }
    preds = {
        name: np.asarray(m(model_feed(m, [data[t.name] for t in m.inputs]), training=False))
        for name, m in models.items()
    }
    ref = preds["original"]
    result = {}
    for name in ("onehot-dense", "round trip"):
        diff = float(np.max(np.abs(preds[name].astype("float64") - ref.astype("float64"))))
        result[name] = diff
        echo(f"  {name:<13} max abs diff vs original: {diff}")
    table0 = models["original"].get_layer("embedding").get_weights()[0]
    table2 = models["round trip"].get_layer("embedding").get_weights()[0]
    same = table0.dtype == table2.dtype and table0.tobytes() == table2.tobytes()
    result["tables_bitwise_equal"] = same
    echo(f"  round-trip Embedding table bitwise identical: {same}")

    from graphkit.bench import bench
    from graphkit.onnx_export import export_onnx
    from graphkit.run import run_model
    from graphkit.verification import verify

    echo("")
    echo(f"== 5. graphkit verify {src.name} {onehot.name}  (256 synthesized padded sequences)")
    report = verify(src, onehot)
    echo(report.format())
    result["verify_exact"] = report.exact

    echo("")
    echo("== 6. graphkit export --onnx: both variants, and the one-hot one fused back to a Gather")
    onnx_paths = {}
    for label, path, kwargs in (
        ("embedding", src, {}),
        ("onehot-dense", onehot, {}),
        ("onehot-dense --fuse-onehot", onehot, {"fuse_onehot": True}),
    ):
        out = work / (path.stem + (".fused" if kwargs else "") + ".onnx")
        rep = export_onnx(path, out, force=True, **kwargs)
        onnx_paths[label] = out
        worst = max(o.max_abs for o in rep.verify.outputs)
        echo(
            f"  {label:<27} {rep.nodes:>3} nodes, exported in {rep.export_seconds:.1f} s, "
            f"onnxruntime vs Keras max abs error {worst:.3g} -> {out.name}"
        )

    echo("")
    echo(f"== 7. graphkit run {onnx_paths['onehot-dense'].name} --inputs {inputs_path.name}")
    ran = run_model(onnx_paths["onehot-dense"], inputs_path)
    for o in ran["outputs"]:
        echo(
            f"  {o['name']}: shape {tuple(o['shape'])} {o['dtype']}, min {o['min']:.6g} max {o['max']:.6g}"
        )

    echo("")
    echo(
        "== 8. graphkit bench (batch 32 x length 64; small vocabulary, so the one-hot cost is small)"
    )
    echo(bench(src, batch=32, seq_len=64, runs=20).format())
    echo("")
    result.update(_old_model(work, fixtures, echo))
    echo("")
    if kept:
        echo(f"files are in {work}")
    else:
        echo("the files were in a temporary folder, now removed: --workdir DIR keeps them")
    return result


RECIPE = "recipe_uint8_300"


def _old_model(work: Path, fixtures: Path | None, echo) -> dict:
    """Bring your old model: the blog's Lambda(K.one_hot) recipe, saved by Keras 2."""
    from graphkit.conversion import convert_file
    from graphkit.io import load_model

    echo(
        "== 9. bring your old model: the blog's Lambda(K.one_hot(K.cast(x, 'uint8'))) + "
        "TimeDistributed(Dense), 300 classes, saved by Keras 2 (tf_keras) as .h5"
    )
    if fixtures is None or not (fixtures / f"{RECIPE}.h5").is_file():
        echo(f"  skipped: needs the repository's fixtures/{RECIPE}.h5")
        return {}
    src = work / f"{RECIPE}.h5"
    shutil.copyfile(fixtures / f"{RECIPE}.h5", src)
    data = np.load(fixtures / f"{RECIPE}.npz")
    out = work / f"{RECIPE}.embedding.keras"
    report = convert_file(src, "embedding", out, force=True)
    echo(f"  graphkit convert {src.name} --to embedding   (safe mode: no code from the file runs)")
    for line in report.format().splitlines()[1:]:
        echo(f"  {line}")
    converted = load_model(out)
    diff = float(np.max(np.abs(np.asarray(converted(data["x"]), "float64") - data["expected"])))
    echo(f"  max abs diff vs what Keras 2 predicted when it saved the model: {diff}")
    return {"old_model": diff}
