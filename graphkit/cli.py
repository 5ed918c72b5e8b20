"""The ``graphkit`` command line: each command declares its options and calls one library function.

Nothing here imports TensorFlow at module level: ``graphkit --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from graphkit.errors import GraphkitError

try:  # typer >= 0.25 carries its own copy of click; its usage errors are that copy's
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - an older typer over the click package
    from click import exceptions as _click_errors


class _UsageError(_click_errors.UsageError):
    """click's usage error in graphkit's form: one ``error: <message>`` line, exit 2."""

    def show(self, file=None) -> None:
        typer.echo(f"error: {self.format_message()}", file=file, err=file is None)


@contextlib.contextmanager
def _one_line_usage():
    """Re-raise click's usage errors (an extra argument, an unknown option, a bad value) as
    ``_UsageError``, which names the command's --help instead of printing its usage."""
    try:
        yield
    except getattr(_click_errors, "NoArgsIsHelpError", ()):  # `graphkit` alone: its help
        raise
    except _UsageError:
        raise
    except _click_errors.UsageError as exc:
        message = exc.format_message()
        if exc.ctx is not None:
            message += f" (see {exc.ctx.command_path} --help)"
        raise _UsageError(message, exc.ctx) from None


class _Group(TyperGroup):
    """The ``graphkit`` group: usage errors of the group and of every command in one line."""

    def make_context(self, *args, **kwargs):
        with _one_line_usage():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        argv = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        try:
            with _one_line_usage():
                return super().invoke(ctx)
        except _UsageError as exc:
            if argv[:1] in (["verify"], ["export"]) and "--json" in argv:  # CI parses stdout
                report = {"status": "error", "error": exc.format_message()}
                if argv[:1] == ["verify"]:
                    report["equivalent"] = None
                typer.echo(json.dumps(report, indent=2))
            raise


app = typer.Typer(
    cls=_Group,
    name="graphkit",
    help="Rewrite and convert Keras model graphs: Embedding <-> OneHot + Dense, verify, "
    "export to ONNX and LiteRT.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}


def _set_debug(value: bool) -> bool:
    if value:
        _state["debug"] = True
    return value


# every command takes --debug too, so that `graphkit verify ... --debug` works where a user
# adds it (the top-level `graphkit --debug verify ...` sets the same flag)
Debug = Annotated[
    bool,
    typer.Option("--debug", help="Show tracebacks for errors.", callback=_set_debug),
]

EXIT_SIGNALS = "130 interrupted (Ctrl-C), 143 terminated"


def _epilog(examples: list[str], exits: str) -> str:
    """--help's closing text: examples kept line by line (click's \\b), then the exit codes."""
    shown = "\n".join(f"  {example}" for example in examples)
    return f"Examples:\n\n\b\n{shown}\n\nExit codes: {exits}; {EXIT_SIGNALS}."


BAD_INPUT = "2 bad input or option (one 'error:' line; --debug adds the traceback)"


_CONVERT_EPILOG = _epilog(
    [
        "graphkit convert model.keras --to onehot-dense",
        "graphkit convert model.onehot-dense.keras --to embedding -o back.keras --force",
        "graphkit convert legacy.h5 --to onehot-dense --partial --json",
    ],
    f"0 converted; {BAD_INPUT}",
)


_INSPECT_EPILOG = _epilog(
    [
        "graphkit inspect model.keras",
        "graphkit inspect model.keras --json",
        "graphkit inspect legacy.h5 --onehot-lambda one_hot=1500",
    ],
    f"0 listed; {BAD_INPUT}",
)


_RULES_EPILOG = _epilog(
    [
        "graphkit rules",
        "graphkit rules --json",
    ],
    f"0 listed; {BAD_INPUT}",
)


_DEMO_EPILOG = _epilog(
    [
        "graphkit demo",
        "graphkit demo --workdir demo-files",
    ],
    f"0 done; {BAD_INPUT}",
)


_VERIFY_EPILOG = _epilog(
    [
        "graphkit verify model.keras model.onehot-dense.keras",
        "graphkit verify model.keras model.onnx --inputs batch.npz --junit verify.xml",
        "graphkit verify model.keras model.onnx --atol 1e-5 --rtol logits:1e-4 --json",
        "graphkit verify model.keras model.onnx --save cases/",
        "graphkit verify model.keras model.onnx --inputs cases/",
    ],
    f"0 equivalent; 1 not equivalent (the report says where); {BAD_INPUT}",
)


_EXPORT_EPILOG = _epilog(
    [
        "graphkit export model.keras --onnx",
        "graphkit export model.keras --onnx -o model.onnx --fuse-onehot --force",
        "graphkit export model.keras --onnx --target nnapi --fixed-shape tokens=1x64",
        "graphkit export model.keras --litert -o model.tflite --fixed-shape tokens=1x64 "
        "--target gpu-delegate",
    ],
    f"0 exported (and verified); 1 the exported model differs from the Keras model; {BAD_INPUT}",
)


_RUN_EPILOG = _epilog(
    [
        "graphkit run model.onnx --inputs batch.npz",
        "graphkit run model.onnx --inputs batch.npz -o outputs.npz --json",
        "graphkit run model.tflite --inputs batch.npz",
    ],
    f"0 ran; {BAD_INPUT}",
)


_BENCH_EPILOG = _epilog(
    [
        "graphkit bench model.keras",
        "graphkit bench model.onnx --batch-size 8 --seq-len 128 --runs 50 --json",
    ],
    f"0 timed; {BAD_INPUT}",
)

Unsafe = Annotated[
    bool,
    typer.Option(
        "--unsafe",
        help="Allow Lambda layers and code in the model config (runs code from the file).",
    ),
]
Imports = Annotated[
    Optional[list[str]],  # noqa: UP045  (typer needs Optional here)
    typer.Option(
        "--import",
        metavar="MODULE_OR_FILE.py",
        help="Import your own module or .py file first (registers custom layers). Repeatable.",
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")]
Timeout = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Stop cleanly after SECONDS (exit 2, one error line; --json/--junit still "
        "report it): running a model costs what the model costs.",
    ),
]


def _check_timeout(timeout: float | None) -> None:
    import math

    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise GraphkitError(f"--timeout must be a number of seconds above 0, got {timeout}")


def _time_limit(timeout: float | None, before=None):
    from graphkit import interrupts

    return interrupts.time_limit(
        timeout,
        f"stopped after {timeout:g} s (--timeout {timeout:g})" if timeout else "",
        before=before,
    )


OneHotLambdas = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--onehot-lambda",
        metavar="NAME[=DEPTH]",
        help="The Lambda layer NAME computes one_hot(cast(x), DEPTH): load it as graphkit's "
        "OneHot without running its code. DEPTH defaults to what its config says. Repeatable.",
    ),
]


Ranges = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--range",
        metavar="NAME=LOW:HIGH",
        help="Input NAME holds integers LOW..HIGH-1 (tokens=0:1500; NAME=HIGH means 0:HIGH), "
        "for inputs whose range graphkit cannot read from the model. Repeatable.",
    ),
]


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


# commands whose --json answers a bad input with {"status": "error", ...} on stdout (verify
# writes its own: it also holds a JUnit report)
_JSON_ERRORS = {"export"}


def cli_command(func):
    """Run a command body: quiet TensorFlow, turn GraphkitError into one `error:` line + exit 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except GraphkitError as exc:
            if _state["debug"]:
                traceback.print_exc()
            if func.__name__ in _JSON_ERRORS and kwargs.get("json_out"):  # CI parses stdout
                typer.echo(json.dumps({"status": "error", "error": exc.for_cli()}, indent=2))
            _err(exc.for_cli())
            raise typer.Exit(2) from None
        except KeyboardInterrupt:  # under main() only if a library replaced its SIGINT handler
            from graphkit import interrupts

            interrupts.exit_interrupted()  # after main()'s install(): same exit as a signal
            _err("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def progress(message: str):
    """A transient spinner on stderr when it is a terminal; silent otherwise."""
    if sys.stderr.isatty():
        from graphkit._terminal import status

        with status(message):
            yield
    else:
        yield


@contextlib.contextmanager
def _live(first: str):
    """Yield a ``graphkit.progress.Progress`` for the library to report to: on a terminal a
    transient line on stderr (spinner, step, bar and count where the step counts, time
    elapsed), elsewhere nothing; stdout, and so ``--json``, stays clean either way."""
    if not sys.stderr.isatty():
        from graphkit.progress import SILENT

        yield SILENT
        return
    from graphkit._terminal import live_progress

    with live_progress(first) as shown:
        yield shown


def _tensorflow(shown=None):
    """Import TensorFlow quietly; ``shown``: the live progress line to say so on."""
    from graphkit._tf import quiet_tensorflow

    if shown is not None:
        shown.step("starting TensorFlow")
        quiet_tensorflow(freeze=True)
        return
    with progress("starting TensorFlow..."):
        quiet_tensorflow(freeze=True)


def _print_version(value: bool) -> None:
    if value:
        from graphkit import __version__

        typer.echo(f"graphkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    _state["debug"] = debug


@app.command(epilog=_CONVERT_EPILOG)
@cli_command
def convert(
    model: Annotated[Path, typer.Argument(help="Input model (.keras or .h5).")],
    to: Annotated[
        str, typer.Option("--to", help="Target form: onehot-dense or embedding.", metavar="TARGET")
    ],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "-o", "--output", help="Output path (.keras or .h5). Default: <stem>.<target>.keras"
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing output file.")
    ] = False,
    partial: Annotated[
        bool, typer.Option("--partial", help="Convert what can be converted; warn about the rest.")
    ] = False,
    unwrap_indices: Annotated[
        bool,
        typer.Option(
            "--unwrap-indices",
            help="Drop the index wrap of one-hot Lambdas that cast to uint8 (index i gets row i, "
            "not i % 256). Changes predictions for i >= 256: verify shows by how much.",
        ),
    ] = False,
    unsafe: Unsafe = False,
    imports: Imports = None,
    onehot_lambdas: OneHotLambdas = None,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Rewrite every Embedding as OneHot + TimeDistributed(Dense), or back."""
    from graphkit.rules import TARGETS

    if to not in TARGETS:
        raise GraphkitError(f"--to {to!r}: expected one of: {', '.join(TARGETS)}")
    from graphkit.conversion import planned_output
    from graphkit.io import check_model_file

    check_model_file(model)  # fail fast, before paying for TensorFlow
    planned_output(model, to, output, force=force)
    with _live("starting TensorFlow") as shown:
        _tensorflow(shown)
        from graphkit.conversion import convert_file

        report = convert_file(
            model,
            to,
            output,
            force=force,
            partial=partial,
            unsafe=unsafe,
            imports=imports or (),
            onehot_lambdas=onehot_lambdas or (),
            unwrap_indices=unwrap_indices,
            progress=shown,
        )
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(report.format())
    for note in report.notes:
        if note.startswith("partial:"):
            _warn(note)


@app.command(epilog=_INSPECT_EPILOG)
@cli_command
def inspect(
    model: Annotated[Path, typer.Argument(help="Model file (.keras or .h5).")],
    unsafe: Unsafe = False,
    imports: Imports = None,
    onehot_lambdas: OneHotLambdas = None,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """List the layers, marking each Embedding and OneHot group and whether it converts."""
    from graphkit.io import check_model_file

    check_model_file(model)
    _tensorflow()
    from graphkit.inspect import inspect_model

    with progress(f"loading {model}..."):
        report = inspect_model(
            model, unsafe=unsafe, imports=imports or (), onehot_lambdas=onehot_lambdas or ()
        )
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(report.format())


@app.command("rules", epilog=_RULES_EPILOG)
@cli_command
def list_rules(json_out: JsonOut = False, debug: Debug = False) -> None:
    """List the rewrite rules and the ONNX passes (answers without importing TensorFlow)."""
    from graphkit.rules import listing

    report = listing()
    typer.echo(json.dumps(report.to_dict(), indent=2) if json_out else report.format())


@app.command(epilog=_DEMO_EPILOG)
@cli_command
def demo(
    workdir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--workdir", help="Where to write the demo's files (default: a temporary folder)."
        ),
    ] = None,
    debug: Debug = False,
) -> None:
    """Run the whole job on a bundled example model: inspect, convert both ways, compare."""
    _tensorflow()
    from graphkit.demo import run_demo

    run_demo(workdir, echo=typer.echo)


@app.command(epilog=_VERIFY_EPILOG)
@cli_command
def verify(
    reference: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="Reference model (.keras, .h5, .onnx or .tflite).", show_default=False),
    ] = None,
    candidate: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="Candidate model (.keras, .h5, .onnx or .tflite).", show_default=False),
    ] = None,
    more: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(
            metavar="REPORTS",
            help="With --merge, every path is a shard's --json report: verify --merge s*.json",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--inputs",
            help="Inputs: .npz keyed by input name, .npy for one input, or a folder that "
            "--save wrote (onnxruntime's test-data layout).",
        ),
    ] = None,
    samples: Annotated[int, typer.Option("--samples", help="Synthesized samples.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per batch.")] = 32,
    seq_len: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--seq-len",
            help="Length of variable (None) axes [default: 16, or the length the models need].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for synthesized inputs.")] = 0,
    rtol: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--rtol",
            metavar="[OUTPUT:]RTOL",
            help="Relative tolerance, for every output or one (repeatable) [default: 1e-6 "
            "Keras/Keras; with ONNX earned from the Keras model's own float32 error].",
        ),
    ] = None,
    atol: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--atol",
            metavar="[OUTPUT:]ATOL",
            help="Absolute tolerance, for every output or one (repeatable) [default: 1e-6 "
            "Keras/Keras; with ONNX earned from the Keras model's own float32 error].",
        ),
    ] = None,
    locate: Annotated[
        bool,
        typer.Option(
            "--locate/--no-locate",
            help="When outputs differ, name the first layer where the models part.",
        ),
    ] = True,
    provider: Annotated[
        str, typer.Option("--provider", help="onnxruntime execution provider: cpu or cuda.")
    ] = "cpu",
    junit: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--junit",
            help="Also write a JUnit XML report to this file (an errored test case on exit 2).",
        ),
    ] = None,
    save: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--save",
            metavar="DIR",
            help="Write the inputs that ran, both sides' outputs and the report to DIR in "
            "onnxruntime's test-data layout (test_data_set_0/input_0.pb, output_0.pb...); "
            "replay with --inputs DIR.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing --junit file, or a folder that --save wrote."
        ),
    ] = False,
    shard: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Run only shard I of N (from 0) of the inputs' batches; merge the shards' "
            "--json reports with --merge.",
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="The paths are shard reports (--shard I/N --json) to merge into the single "
            "run's report: verify --merge s0.json s1.json ...",
        ),
    ] = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run the shards as Ray tasks and merge them (needs the 'ray' extra); a local "
            "Ray is started for the run unless --ray-address is given.",
        ),
    ] = False,
    ray_address: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--ray-address", metavar="ADDRESS", help="With --ray: an existing cluster."),
    ] = None,
    shards: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--shards", help="With --ray: how many shards [default: the CPUs of Ray]."),
    ] = None,
    ranges: Ranges = None,
    unsafe: Unsafe = False,
    imports: Imports = None,
    onehot_lambdas: OneHotLambdas = None,
    json_out: JsonOut = False,
    timeout: Timeout = None,
    debug: Debug = False,
) -> None:
    """Check that two models compute the same thing. Exit 0 equivalent, 1 not, 2 bad input.

    With --json or --junit, exit 2 still gives a report: {"status": "error", "error": ...}
    and one errored test case."""
    reports = {"junit": None}
    paths = [p for p in (reference, candidate, *(more or [])) if p is not None]
    if merge:  # what the error reports name: the merged run's first reports
        reference, candidate = (paths + [Path("-"), Path("-")])[:2]
    usage = _verify_usage(paths, merge=merge, shard=shard, ray=ray, ray_address=ray_address, shards=shards)  # fmt: skip
    if usage is not None:
        _error_reports(usage, reference or Path("-"), candidate or Path("-"), json_out=json_out, junit=None)  # fmt: skip
        raise GraphkitError(usage)

    def timed_out() -> None:  # CI still gets its reports when --timeout stops the run
        _error_reports(
            f"stopped after {timeout:g} s (--timeout {timeout:g})",
            reference,
            candidate,
            json_out=json_out,
            junit=reports["junit"],
        )

    try:
        _check_timeout(timeout)
        with _time_limit(timeout, before=timed_out):
            report = _verify_and_report(
                reference,
                candidate,
                inputs,
                junit,
                force,
                reports,
                options=dict(
                    merge=paths if merge else None,
                    shard=shard,
                    ray=dict(address=ray_address, shards=shards) if ray else None,
                    save=save,
                    ranges=ranges,
                    samples=samples,
                    batch_size=batch_size,
                    seq_len=seq_len,
                    seed=seed,
                    rtol=rtol,
                    atol=atol,
                    locate=locate,
                    provider=provider,
                    unsafe=unsafe,
                    imports=imports or (),
                    onehot_lambdas=onehot_lambdas or (),
                ),
            )
    except GraphkitError as exc:  # cli_command prints the `error:` line and exits 2
        _error_reports(
            exc.for_cli(),
            reference,
            candidate,
            json_out=json_out,
            junit=reports["junit"],
        )
        raise
    if junit is not None:
        _write_text(junit, report.to_junit())
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.format())
    raise typer.Exit(0 if report.equivalent else 1)


def _verify_usage(paths, *, merge, shard, ray, ray_address, shards) -> str | None:
    """What is wrong with verify's paths and its shard options together, or None."""
    if merge:
        if not paths:
            return "--merge needs the shards' reports: verify --merge s0.json s1.json ..."
        if shard is not None or ray:
            return "--merge takes reports, not --shard or --ray"
        return None
    if len(paths) != 2:
        return f"verify takes two models, got {len(paths)} path(s); --merge merges shard reports"
    if shard is not None and ray:
        return "--shard runs one shard here; --ray runs them all on Ray: not both"
    if (ray_address is not None or shards is not None) and not ray:
        return f"{'--ray-address' if ray_address is not None else '--shards'} needs --ray"
    return None


def _verify_and_report(reference, candidate, inputs, junit, force, reports, options):
    """verify's output checks, then the run; ``reports["junit"]`` is set once the JUnit
    path is known to be writable (so an error report never clobbers anything)."""
    merge = options.pop("merge")
    if junit is not None:
        from graphkit.io import check_output_path

        _refuse_overwriting(junit, "--junit", merge or [reference, candidate, inputs])
        check_output_path(junit, force=force)  # a report obeys the no-clobber rule too
        reports["junit"] = junit
    if merge:
        from graphkit.verification.shards import load_shard_reports, merge_reports

        return merge_reports(load_shard_reports(merge))
    return _verify_checked(reference, candidate, inputs, force=force, **options)


def _verify_checked(reference: Path, candidate: Path, inputs: Path | None, **options):
    """verify's checks (before TensorFlow where they can be), then the library's verify."""
    from graphkit.verification import check_options, parse_tolerance
    from graphkit.verification.inputs import parse_ranges

    save, force, ranges = options.pop("save"), options.pop("force"), options.pop("ranges")
    on_ray = options.pop("ray")
    from graphkit.verification.shards import parse_shard

    parse_shard(options["shard"])
    if options["shard"] is None:
        del options["shard"]
    if on_ray is not None:
        from graphkit.verification.ray_runner import _import_ray

        _import_ray()  # missing: one line before anything runs
        if on_ray["shards"] is not None and on_ray["shards"] < 1:
            raise GraphkitError(f"--shards must be at least 1, got {on_ray['shards']}")
    options["rtol"] = parse_tolerance(options["rtol"], "rtol")
    options["atol"] = parse_tolerance(options["atol"], "atol")
    _check_provider(options["provider"])
    _check_provider_applies(options["provider"], reference, candidate)
    check_options(
        samples=options["samples"],
        batch_size=options["batch_size"],
        seq_len=options["seq_len"],
        rtol=options["rtol"],
        atol=options["atol"],
    )
    parse_ranges(ranges)
    for path in (reference, candidate):
        _check_any_model_file(path)
    if inputs is not None:
        _check_inputs_file(inputs)
    extra = {}
    if ranges:
        extra["ranges"] = ranges
    if save is not None:
        from graphkit.verification.testdata import check_save_dir

        check_save_dir(save, force=force)
        _refuse_replacing(save, [reference, candidate, inputs])
        extra.update(save=save, force=force)
    if on_ray is not None:
        from graphkit.verification.ray_runner import verify_on_ray

        if save is not None:
            raise GraphkitError("--save with --ray: save the inputs of a single run")
        with _live("starting Ray") as shown:
            return verify_on_ray(
                reference, candidate, inputs, **on_ray, progress=shown, **options, **extra
            )
    with _live("starting TensorFlow") as shown:
        _tensorflow(shown)
        from graphkit.verification import verify as run_verify

        return run_verify(reference, candidate, inputs, progress=shown, **options, **extra)


def _error_reports(
    message: str, reference: Path, candidate: Path, *, json_out: bool, junit: Path | None
) -> None:
    """verify could not run (exit 2): the JSON and JUnit reports still say so, in one line."""
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "status": "error",
                    "error": message,
                    "reference": str(reference),
                    "candidate": str(candidate),
                    "equivalent": None,
                },
                indent=2,
            )
        )
    if junit is not None:
        from xml.sax.saxutils import escape, quoteattr

        name = f"{reference.name} vs {candidate.name}"
        text = "\n".join(
            [
                '<?xml version="1.0" encoding="UTF-8"?>',
                '<testsuites name="graphkit verify" tests="1" failures="0" errors="1">',
                f'  <testsuite name={quoteattr(name)} tests="1" failures="0" errors="1">',
                '    <testcase classname="graphkit.verification" name="verify">',
                f"      <error message={quoteattr(message)}>{escape(message)}</error>",
                "    </testcase>",
                "  </testsuite>",
                "</testsuites>",
                "",
            ]
        )
        try:
            _write_text(junit, text)
        except GraphkitError as exc:  # the first error is the one to report
            _warn(f"no JUnit report: {exc}")


def _refuse_overwriting(output: Path, flag: str, sources) -> None:
    from graphkit.run import check_not_an_input

    check_not_an_input(output, flag, sources)


def _refuse_replacing(folder: Path, sources) -> None:
    """``--save DIR`` replaces DIR as a whole: no input may live there."""
    from graphkit.run import same_file

    target = Path(folder).resolve()
    for source in sources:
        if source is None:
            continue
        here = Path(source).resolve()
        if here == target or target in here.parents or same_file(Path(folder), Path(source)):
            raise GraphkitError(f"--save {folder}: holds the input {source}; save somewhere else")


def _check_provider(provider: str) -> None:
    from graphkit.backends import PROVIDERS

    if provider not in PROVIDERS:
        raise GraphkitError(f"--provider {provider!r}: expected one of: {', '.join(PROVIDERS)}")


def _check_provider_applies(provider: str, reference: Path, candidate: Path) -> None:
    """--provider picks onnxruntime's execution provider: with no ONNX model it would change
    nothing, so it is refused rather than ignored."""
    if provider != "cpu" and not any(
        Path(p).suffix.lower() == ".onnx" for p in (reference, candidate)
    ):
        raise GraphkitError(
            f"--provider {provider}: Keras models run in TensorFlow and .tflite files in LiteRT "
            "on the CPU; --provider chooses onnxruntime's device for an .onnx model"
        )


def _runtime_of(model: Path) -> str:
    return "LiteRT" if Path(model).suffix.lower() == ".tflite" else "onnxruntime"


def _check_any_model_file(path: Path) -> None:
    if path.suffix.lower() == ".tflite":
        from graphkit.backends.litert_backend import check_tflite_file

        check_tflite_file(path)  # the backend reads and checks it in full once
        return
    if path.suffix.lower() == ".onnx":
        from graphkit.backends import check_file_exists

        check_file_exists(path, "an ONNX model")  # the backend runs the full check once
        return
    from graphkit.io import check_model_file

    check_model_file(path)


def _check_inputs_file(path: Path) -> None:
    """An --inputs file that cannot be one answers before TensorFlow's import."""
    from graphkit.backends import check_file_exists

    if path.is_dir():
        from graphkit.verification.testdata import check_test_data_dir

        check_test_data_dir(path)
        return
    if path.suffix.lower() not in (".npz", ".npy"):
        raise GraphkitError(
            f"{path}: inputs must be a .npz or .npy file, or a folder that verify --save wrote"
        )
    check_file_exists(path, "a .npz/.npy file")


def _write_text(path: Path, text: str) -> None:
    from graphkit.io import atomic_output

    with atomic_output(path, force=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


@app.command(epilog=_EXPORT_EPILOG)
@cli_command
def export(
    model: Annotated[Path, typer.Argument(help="Keras model (.keras or .h5).")],
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Export to ONNX (tf2onnx; checked in onnxruntime).")
    ] = False,
    litert: Annotated[
        bool,
        typer.Option(
            "--litert",
            help="Export to LiteRT / TensorFlow Lite (.tflite; checked in the LiteRT runtime, "
            "extra 'litert').",
        ),
    ] = False,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "-o",
            "--output",
            help="Output .onnx or .tflite path. Default: <stem>.onnx or <stem>.tflite beside "
            "the model.",
        ),
    ] = None,
    opset: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--opset", help="ONNX opset (13-21). [default: 17]"),
    ] = None,
    passes: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--pass",
            metavar="NAME",
            help="Run this ONNX pass on the export (repeatable, in order); `graphkit rules` "
            "lists them.",
        ),
    ] = None,
    fuse_onehot: Annotated[
        bool,
        typer.Option(
            "--fuse-onehot",
            help="Same as --pass fuse_onehot: OneHot -> MatMul (-> Add) becomes one Gather.",
        ),
    ] = False,
    lower_gather: Annotated[
        bool,
        typer.Option(
            "--lower-gather",
            help="Same as --pass lower_gather: Gather on a constant table -> OneHot -> MatMul.",
        ),
    ] = False,
    index_dtype: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--index-dtype",
            metavar="int32",
            help="Make every Gather/OneHot index int32, and int64 inputs that only feed indices "
            "(NNAPI, QNN, WebNN, TensorRT); an int64 input read as data is refused. "
            "[default: the model's own types]",
        ),
    ] = None,
    fixed_shapes: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--fixed-shape",
            metavar="NAME=DIMS",
            help="Fix input NAME to DIMS (tokens=2x160; repeatable) and fold the shape "
            "arithmetic, so that no dimension stays dynamic; the check feeds that batch size.",
        ),
    ] = None,
    target: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--target",
            metavar="nnapi|coreml|gpu-delegate",
            help="ONNX: fit the export to a mobile execution provider so that it runs the whole "
            "graph (needs --fixed-shape, implies --index-dtype int32; inputs must be indices in "
            "[0, vocab)); onnxruntime's mobile usability checker reports the coverage. "
            "LiteRT: gpu-delegate (needs --fixed-shape, implies --index-dtype int32) traces "
            "lookups in forms the GPU delegate's rules take (inputs must be indices in "
            "[0, vocab)) and reports every op the rules refuse, beside TensorFlow's Analyzer.",
        ),
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option("--no-verify", help="Skip the check of the export against Keras."),
    ] = False,
    external_data: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--external-data/--no-external-data",
            help="Weights in OUT.onnx.data beside the model [default: when over 1 GiB].",
        ),
    ] = None,
    inputs: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--inputs",
            help="Check on these inputs: .npz keyed by input name, .npy for one, or a folder "
            "that verify --save wrote.",
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", help="Synthesized samples for the check.")
    ] = 64,
    seq_len: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--seq-len",
            help="Length of variable axes in the check [default: 16, or the length the model "
            "needs].",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing output file.")
    ] = False,
    ranges: Ranges = None,
    unsafe: Unsafe = False,
    imports: Imports = None,
    onehot_lambdas: OneHotLambdas = None,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Export to ONNX (tf2onnx) or LiteRT (.tflite), check it, and verify it against Keras."""
    if onnx == litert:
        raise GraphkitError(
            "choose one export format: --onnx or --litert"
            if onnx
            else "choose the export format: --onnx or --litert"
        )
    from graphkit.io import check_model_file
    from graphkit.onnx_passes import fix_shapes
    from graphkit.verification.inputs import parse_ranges

    parse_ranges(ranges)
    shapes = fix_shapes.parse_fixed_shapes(fixed_shapes or ())
    if not litert and opset is None:
        opset = 17  # ONNX's default (None only tells that --opset was not given)
    if litert:
        onnx_only = {
            "--opset": opset is not None,
            "--pass": bool(passes),
            "--fuse-onehot": fuse_onehot,
            "--lower-gather": lower_gather,
            "--external-data/--no-external-data": external_data is not None,
        }
        given = [flag for flag, used in onnx_only.items() if used]
        if given:
            raise GraphkitError(f"{given[0]} is an ONNX option: it does not apply with --litert")
    else:
        from graphkit.onnx_targets import plan_passes

        # a mistyped or conflicting --pass, a bad deployment option, or --target without
        # --fixed-shape fails now, not after TensorFlow's import (input names are checked
        # once the model is loaded)
        plan_passes(
            passes or (),
            fuse_onehot=fuse_onehot,
            lower_gather=lower_gather,
            index_dtype=index_dtype,
            fixed_shapes=shapes,
            target=target,
        )
    check_model_file(model)
    from graphkit.export import (
        NotEquivalentError,
        check_export_options,
        check_litert_options,
        export_litert,
        export_onnx,
    )

    common = dict(force=force, samples=samples, seq_len=seq_len)
    if litert:
        check_litert_options(
            model, output, target=target, index_dtype=index_dtype, verify=not no_verify, **common
        )
    else:
        check_export_options(model, output, opset=opset, external_data=external_data, **common)
    if inputs is not None:
        _check_inputs_file(inputs)
    shared = dict(
        verify=not no_verify,
        index_dtype=index_dtype,
        fixed_shapes=shapes or None,
        target=target,
        inputs=inputs,
        ranges=ranges or None,
        unsafe=unsafe,
        imports=imports or (),
        onehot_lambdas=onehot_lambdas or (),
        **common,
    )
    import time

    from graphkit import _started

    started = time.perf_counter()
    try:
        with _live("starting TensorFlow") as shown:
            _tensorflow(shown)
            imported = time.perf_counter()
            if litert:
                report = export_litert(model, output, progress=shown, **shared)
            else:
                report = export_onnx(
                    model,
                    output,
                    opset=opset,
                    passes=passes or (),
                    fuse_onehot=fuse_onehot,
                    lower_gather=lower_gather,
                    external_data=external_data,
                    progress=shown,
                    **shared,
                )
    except NotEquivalentError as exc:
        if json_out:
            typer.echo(json.dumps(exc.report.to_dict(), indent=2))
        else:
            typer.echo(exc.report.format())
        _err(exc.for_cli())
        raise typer.Exit(1) from None
    # the process's own stages: Python and graphkit's imports, then TensorFlow's
    began = _started.STARTED
    process = {"start-up": started - began} if began is not None else {}
    report.stages = {**process, "tensorflow": imported - started, **report.stages}
    typer.echo(json.dumps(report.to_dict(), indent=2) if json_out else report.format())
    if debug:
        typer.echo(report.format_stages(), err=True)


@app.command("run", epilog=_RUN_EPILOG)
@cli_command
def run_onnx(
    model: Annotated[Path, typer.Argument(help="ONNX (.onnx) or LiteRT (.tflite) model.")],
    inputs: Annotated[
        Path,
        typer.Option(
            "--inputs",
            help=".npz keyed by input name, .npy for one input, or a folder that verify --save "
            "wrote.",
        ),
    ],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "-o", "--output", help="Write the outputs to this .npz (keyed by output name)."
        ),
    ] = None,
    provider: Annotated[
        str, typer.Option("--provider", help="cpu or cuda (cuda: .onnx only, needs the gpu extra).")
    ] = "cpu",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing output file.")
    ] = False,
    ranges: Ranges = None,
    json_out: JsonOut = False,
    timeout: Timeout = None,
    debug: Debug = False,
) -> None:
    """Run an ONNX model in onnxruntime, or a .tflite file in LiteRT, on inputs from a file."""
    from graphkit.run import run_model
    from graphkit.verification.inputs import parse_ranges

    parse_ranges(ranges)
    _check_timeout(timeout)
    with _time_limit(timeout), progress(f"running {model} in {_runtime_of(model)}..."):
        report = run_model(
            model, inputs, output, provider=provider, force=force, ranges=ranges or None
        )
    typer.echo(json.dumps(report.to_dict(), indent=2) if json_out else report.format())


@app.command(epilog=_BENCH_EPILOG)
@cli_command
def bench(
    model: Annotated[
        Path, typer.Argument(help="Keras model (.keras/.h5), ONNX model or .tflite file.")
    ],
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per batch.")] = 32,
    batch: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--batch", hidden=True, help="Old name of --batch-size."),
    ] = None,
    seq_len: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--seq-len",
            help="Length of variable axes [default: 64, or the length the model needs].",
        ),
    ] = None,
    runs: Annotated[int, typer.Option("--runs", help="Timed runs per row.")] = 30,
    provider: Annotated[
        str, typer.Option("--provider", help="onnxruntime provider: cpu or cuda (.tflite: cpu).")
    ] = "cpu",
    ranges: Ranges = None,
    unsafe: Unsafe = False,
    imports: Imports = None,
    onehot_lambdas: OneHotLambdas = None,
    json_out: JsonOut = False,
    timeout: Timeout = None,
    debug: Debug = False,
) -> None:
    """Median and p90 latency: Keras (checked trace), onnxruntime, both variants, fused and not;
    an .onnx or .tflite file alone in its runtime."""
    from graphkit.bench import check_bench_options
    from graphkit.verification.inputs import parse_ranges

    _check_provider(provider)
    if batch is not None:  # the old spelling, kept as a hidden alias
        if batch_size not in (32, batch):
            raise GraphkitError("give --batch-size only (--batch is its old name)")
        batch_size = batch
    check_bench_options(batch_size=batch_size, seq_len=seq_len, runs=runs)
    parse_ranges(ranges)
    _check_timeout(timeout)
    _check_any_model_file(model)
    with _time_limit(timeout), _live("starting TensorFlow") as shown:
        _tensorflow(shown)
        from graphkit.bench import bench as run_bench

        report = run_bench(
            model,
            batch_size=batch_size,
            seq_len=seq_len,
            runs=runs,
            provider=provider,
            ranges=ranges or None,
            unsafe=unsafe,
            imports=imports or (),
            onehot_lambdas=onehot_lambdas or (),
            progress=shown,
        )
    typer.echo(json.dumps(report.to_dict(), indent=2) if json_out else report.format())


def main() -> None:
    """Console-script entry point.

    Ctrl-C and SIGTERM are handled by graphkit.interrupts (one ``error: interrupted`` line,
    exit 130/143, temporary files removed) until the process ends; so it ends through
    ``interrupts.exit_process``, not through the interpreter's shutdown, where they cannot be.
    """
    from graphkit import interrupts

    interrupts.install()
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        interrupts.exit_interrupted()
        _err("interrupted")
        code = 130
    except BaseException:  # a bug: its traceback, as Python would print it
        sys.excepthook(*sys.exc_info())
        code = 1
    interrupts.exit_process(code)


if __name__ == "__main__":
    main()
