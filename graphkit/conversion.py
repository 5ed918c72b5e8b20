"""``graphkit.convert``: Embedding <-> OneHot + TimeDistributed(Dense), for whole models."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.engine import REWRITTEN, Finding, all_layer_names, rewrite
from graphkit.errors import GraphkitError
from graphkit.rules import TARGETS, RewriteContext, phases, repairs

OPTIMIZER_NOTE = "optimizer state is not carried over (the compile config, loss and metrics, is)"


@dataclass
class ConversionReport:
    """What ``convert`` did: the new model, one finding per Embedding/OneHot, and notes."""

    target: str
    model: Any
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str | None = None
    output: str | None = None

    def with_status(self, status: str) -> list[Finding]:
        return [f for f in self.findings if f.status == status]

    converted = property(lambda self: self.with_status("converted"))
    repaired = property(lambda self: self.with_status("repaired"))
    normalised = property(lambda self: self.with_status("normalised"))
    refused = property(lambda self: self.with_status("refused"))
    kept = property(lambda self: self.with_status("kept"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "source": self.source,
            "output": self.output,
            **{
                status: len(self.with_status(status))
                for status in ("converted", "repaired", "normalised", "refused", "kept")
            },
            "findings": [f.to_dict() for f in self.findings],
            "notes": self.notes,
        }

    def format(self) -> str:
        """What ``graphkit convert`` prints on stdout (``partial:`` notes go to stderr)."""
        lines = [f"{self.source} -> {self.output} ({self.target})"]
        for f in self.findings:
            if f.status in REWRITTEN:
                new = " + ".join(f.new_layers) or "(removed)"
                lines.append(f"  {f.status:<10} {f.path} ({f.layer_class}) -> {new}")
                lines += [f"             {note}" for note in f.notes]
            else:
                lines.append(f"  {f.status:<10} {f.path} ({f.layer_class}): {f.reason}")
        lines += [
            f"note: {note}" for note in self.notes if not note.startswith(("partial:", "kept "))
        ]
        return "\n".join(lines)


def _copy_model(model):
    """An independent copy (weights included) through Keras' own serialization."""
    import keras

    from graphkit import _keras_api
    from graphkit.interrupts import temporary_tempdir

    # temporary_tempdir: Keras' own asset folders (tempfile.mkdtemp) land inside it too
    with temporary_tempdir(prefix="graphkit-copy-") as tmp:
        path = os.path.join(tmp, "model.keras")
        try:
            model.save(path)
            # Our own file, just written: safe mode would only refuse what the caller already
            # holds. Its Lambdas (if any) keep the globals they had.
            functions = _keras_api.lambda_functions(model)
            with _keras_api.lambda_globals({}, functions):
                return keras.saving.load_model(path, safe_mode=not functions, compile=False)
        except Exception as exc:
            raise GraphkitError(
                f"cannot copy model {model.name!r} before rewriting it ({type(exc).__name__}: {exc}); "
                "pass copy=False to rewrite it in place (the result then shares its untouched layers)"
            ) from exc


def repair(model, ctx: RewriteContext | None = None) -> tuple[Any, list[Finding]]:
    """Run the repair rules (Keras' TimeDistributed -> graphkit's, see repair_time_distributed).

    Returns the repaired model (``model`` itself when nothing changed; untouched layers are
    shared with it) and the findings: "repaired", or "kept" with the reason. Run before the
    target's rules in ``convert`` and before tracing in ``export``.
    """
    new_model, plan = rewrite(model, repairs(), ctx)
    return new_model, plan.findings


def convert(
    model,
    to: str,
    *,
    partial: bool = False,
    copy: bool = True,
    unwrap_indices: bool = False,
    findings: list[Finding] | None = None,
) -> ConversionReport:
    """Rewrite every Embedding (``to="onehot-dense"``) or OneHot+Dense group (``to="embedding"``).

    ``model`` is a Keras model or a path (loaded in safe mode). Refuses (GraphkitError) when
    an anchor cannot be rewritten, e.g. an Embedding inside a custom layer, unless
    ``partial=True``. With ``copy=True`` the input model is left fully independent of the
    result; with ``copy=False`` the result reuses the input's untouched layers.
    ``unwrap_indices=True`` drops the index wrap of one-hots adopted from Lambdas with a
    narrowing cast (``uint8``): index i gets row i, not row i % 256 (this changes what the
    model computes for i >= 256). ``findings`` are what loading did (adopted Lambdas).
    """
    if to not in TARGETS:
        raise GraphkitError(f"unknown target {to!r}; expected one of: {', '.join(TARGETS)}")
    source = None
    if isinstance(model, (str, os.PathLike)):
        from graphkit.io import load_model

        source = str(model)
        model = load_model(model)
        copy = False
    from graphkit import _keras_api
    from graphkit.subclassed import needs_view

    if needs_view(model) and not model.built and not _keras_api.build_input_shapes(model):
        raise GraphkitError(
            f"the subclassed model {type(model).__name__} was never built or called, so it "
            "holds no weights yet: call it once on a batch (model(x)) or model.build(shape) "
            "before saving it"
        )
    original = model
    if copy:
        model = _copy_model(model)

    # Phases in order (repair, normalise, convert), each on the previous phase's result; one
    # naming context for all of them. The findings of the last phase decide what converted.
    ctx = RewriteContext(all_layer_names(model))
    findings = list(findings or [])
    new_model, plan = model, None
    unwrapped: list[str] = []
    swapped: list[tuple] = []
    for rules in phases(to):
        if unwrap_indices and rules and rules[0].phase == "convert":
            unwrapped = _unwrap(new_model)
        new_model, plan = rewrite(new_model, rules, ctx)
        findings += plan.findings
        swapped += plan.swapped
    _prove_used(new_model, [f for f in findings if f.status in REWRITTEN], swapped)
    target_rules = phases(to)[-1]
    report = ConversionReport(to, new_model, findings, source=source)
    if unwrap_indices:
        report.notes.append(
            "--unwrap-indices: "
            + (
                f"{', '.join(map(repr, unwrapped))} now give index i row i, not row i % wrap: "
                "predictions change for those indices (graphkit verify shows by how much)"
                if unwrapped
                else "no one-hot wraps its indices: nothing to unwrap"
            )
        )

    what = " or ".join(dict.fromkeys(rule.anchor_label for rule in target_rules))
    if report.refused:
        from graphkit.rules import RULES

        labels = {rule.name: rule.anchor_label for rule in RULES}
        what = " or ".join(dict.fromkeys(labels.get(f.rule, f.layer_class) for f in report.refused))
        listing = "; ".join(f"{f.path} ({f.reason})" for f in report.refused)
        if not partial:
            raise GraphkitError(
                f"cannot convert {len(report.refused)} {what}(s): {listing}. "
                "Pass --partial (partial=True) to convert the rest"
            )
        report.notes.append(
            f"partial: left {len(report.refused)} {what}(s) as they were: {listing}"
        )
    rewritten = report.repaired + report.normalised
    if not report.converted and rewritten and not report.refused:
        # Already in the target's form: the repairs and normalisations are the result.
        report.notes.append(
            f"the model has no {what} to convert"
            + (
                f" ({'; '.join(f'{f.path}: {f.reason}' for f in plan.findings)})"
                if plan.findings
                else ""
            )
            + f": it is written with {len(rewritten)} repair(s) or normalisation(s) only"
        )
    elif not report.converted:
        if not plan.findings:
            kept = "".join(f"; kept {f.path}: {f.reason}" for f in report.kept)
            from graphkit.rules import target_from, variant_of

            form = variant_of(model)
            back = target_from(form) if form else None
            if form == to and back and back != to:  # asked for the form it is in
                raise GraphkitError(
                    f"nothing to convert: the model is already in {to} form (it has no "
                    f"{what}); the other way is to={back!r}{kept}",
                    cli=f"nothing to convert: the model is already in {to} form (it has no "
                    f"{what}); the other way is --to {back}{kept}",
                )
            raise GraphkitError(f"nothing to convert: the model has no {what}{kept}")
        raise GraphkitError(
            f"nothing to convert: no {what} could be rewritten ("
            + "; ".join(f"{f.path}: {f.reason}" for f in plan.findings)
            + ")"
        )
    for f in report.kept:
        report.notes.append(f"kept {f.path}: {f.reason}")
    import keras

    from graphkit import _keras_api

    lambdas = [
        layer.name
        for layer in _keras_api.flatten_layers(new_model)
        if isinstance(layer, keras.layers.Lambda)
    ]
    if lambdas:
        report.notes.append(
            f"the output keeps Lambda layer(s) {', '.join(map(repr, lambdas))}: Keras loads it "
            "only with safe_mode=False, and code written for Keras 2 (K.one_hot...) runs only "
            "where graphkit provides those names (graphkit ... --unsafe)"
        )
    if original.compiled:
        if not new_model.compiled:
            try:
                new_model.compile_from_config(original.get_compile_config())
            except Exception as exc:
                report.notes.append(f"the compile config could not be carried over: {exc}")
        report.notes.append(OPTIMIZER_NOTE)
    return report


def _prove_used(model, findings: list[Finding], swapped: list[tuple]) -> None:
    """ "converted" means the graph calls the new layers: one probe (the trace of the model's
    function, which needs no data; else one eager call on a synthesized batch) records which
    layers run. A rewrite whose new layers do not run, or whose replaced layer still runs
    (a swap the model's graph does not see), becomes a refusal, and a swap is undone."""
    from graphkit import _keras_api
    from graphkit.engine import unswap

    if not findings:
        return
    by_name = {layer.name: layer for layer in _keras_api.flatten_layers(model)}
    swaps = {id(entry[0]): entry for entry in swapped}
    watched: dict[int, object] = {}
    checks = []
    for f in findings:
        if id(f) in swaps:
            _, _, _, _, old, new = swaps[id(f)]
            news, olds = [new], [old]
        else:
            news, olds = [by_name[n] for n in f.new_layers if n in by_name], []
        if not news:
            f.notes.append("not probed: its new layers are not in the model by name")
            continue
        for layer in news + olds:
            watched[id(layer)] = layer
        checks.append((f, news, olds))
    called, problem = _called_layers(model, list(watched.values()))
    for f, news, olds in checks:
        if called is None:
            if id(f) not in swaps:  # a rebuilt graph calls its new layers by construction
                f.notes.append(f"not probed ({problem}): the rebuilt graph calls it")
                continue
            why = f"not proven that the model's graph calls the new layer (no probe ran: {problem})"
            f.status, f.reason = "refused", why
            _, container, places, refs, old, new = swaps[id(f)]
            unswap(container, places, refs, old, new)
            continue
        uncalled = [n.name for n in news if id(n) not in called]
        still = [o.name for o in olds if id(o) in called]
        if not uncalled and not still:
            continue
        if still:
            why = (
                f"the model's graph does not call the new layer: it still calls {still[0]!r} "
                "(its graph keeps its own reference)"
            )
        else:
            why = f"the model's graph never calls the new layer {uncalled[0]!r}" + (
                " (its code reads the table directly?)" if id(f) in swaps else ""
            )
        f.status, f.reason = "refused", why
        if id(f) in swaps:
            _, container, places, refs, old, new = swaps[id(f)]
            unswap(container, places, refs, old, new)


def _called_layers(model, layers: list) -> tuple[set[int] | None, str]:
    """ids of ``layers`` that one call of ``model`` runs: hooks on their ``call``, then the
    trace that a KerasBackend makes anyway (no data needed), or one eager call."""
    if not layers:
        return set(), ""
    called: set[int] = set()
    saved = []
    for layer in layers:
        own = layer.__dict__.get("call")
        original = layer.call

        def call(*args, _layer=layer, _original=original, **kwargs):
            called.add(id(_layer))
            return _original(*args, **kwargs)

        saved.append((layer, own))
        object.__setattr__(layer, "call", call)
    try:
        from graphkit.backends.keras_backend import eager_call, serving_function
        from graphkit.subclassed import functional_view

        view = functional_view(model, None)
        try:
            serving_function(view)[0].get_concrete_function()
        except Exception:  # not traceable: one eager call on a synthesized batch
            from graphkit.backends import KerasBackend
            from graphkit.verification import synthesize

            called.clear()
            backend = KerasBackend(view)
            batch = next(synthesize(backend.inputs, 2, 2, 16, 0))
            called.clear()
            eager_call(backend.model, [batch[s.name] for s in backend.inputs])
    except Exception as exc:
        from graphkit.errors import one_line

        return None, one_line(exc)
    finally:
        for layer, own in saved:
            if own is not None:
                object.__setattr__(layer, "call", own)
            else:
                vars(layer).pop("call", None)
    return called, ""


def _unwrap(model) -> list[str]:
    """Drop ``wrap`` from every graphkit OneHot that has one; their names."""
    from graphkit import _keras_api
    from graphkit.layers import OneHot

    names = []
    for layer in _keras_api.flatten_layers(model, include_self=False):
        if isinstance(layer, OneHot) and layer.wrap is not None:
            layer.wrap = None
            names.append(layer.name)
    return names


def default_output_path(source: str | os.PathLike, to: str, suffix: str = ".keras") -> Path:
    """``<stem>.<target>.keras`` beside the input."""
    src = Path(source)
    return src.with_name(f"{src.stem}.{to}{suffix}")


def planned_output(
    source: str | os.PathLike, to: str, output: str | os.PathLike | None, *, force: bool = False
) -> Path:
    """The file ``convert_file`` will write, checked (target, extension, an existing file, its
    folder, not the input itself). Cheap: the CLI runs it before importing TensorFlow."""
    from graphkit.io import check_output_path, model_format

    if to not in TARGETS:
        raise GraphkitError(f"unknown target {to!r}; expected one of: {', '.join(TARGETS)}")
    out = Path(output) if output is not None else default_output_path(source, to)
    model_format(out)
    check_output_path(out, force=force)
    if Path(source).exists() and out.exists() and out.resolve() == Path(source).resolve():
        raise GraphkitError(f"{out}: is the input file; choose another output path")
    return out


def convert_file(
    source: str | os.PathLike,
    to: str,
    output: str | os.PathLike | None = None,
    *,
    force: bool = False,
    partial: bool = False,
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
    unwrap_indices: bool = False,
    progress=None,
) -> ConversionReport:
    """Load ``source``, convert it, save it atomically; what ``graphkit convert`` runs.

    ``onehot_lambdas``: the Lambda layers to adopt as graphkit's OneHot (``NAME[=DEPTH]``),
    see ``graphkit.io.load_model``. ``progress``: a ``graphkit.progress.Progress``.
    """
    from graphkit.io import load_model, save_owned
    from graphkit.progress import as_progress

    say = as_progress(progress)
    out = planned_output(source, to, output, force=force)
    say.step(f"loading {source}")
    load_notes: list[str] = []
    adopted: list[Finding] = []
    model = load_model(
        source,
        unsafe=unsafe,
        imports=imports,
        notes=load_notes,
        onehot_lambdas=onehot_lambdas,
        findings=adopted,
    )
    say.step(f"converting to {to}")
    report = convert(
        model, to, partial=partial, copy=False, unwrap_indices=unwrap_indices, findings=adopted
    )
    report.notes[:0] = load_notes
    report.source = str(source)
    del model  # the report holds the only reference: released before the reload proof
    say.step(f"saving {out} and reading it back")
    save_owned(report, "model", out, force=force)
    report.output = str(out)
    return report
