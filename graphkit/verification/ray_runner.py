"""verify's shards as Ray tasks (``pip install 'keras-graphkit[ray]'``); the driver merges.

graphkit grows no scheduler of its own: each Ray task runs ``verify(..., shard="I/N")``,
the same code as ``graphkit verify --shard I/N``, and returns its report; the driver merges
them with ``graphkit.verification.shards.merge_reports``. The workers read the models and
inputs from the paths given (shared storage on a cluster; a relative path is taken from the
driver's working directory where the worker has it): nothing is shipped through the driver.
A worker that dies is retried by Ray (``max_retries``); a shard that keeps failing, or that
fails with a user error, fails the run naming it. Ray is imported here only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from graphkit.errors import GraphkitError, one_line
from graphkit.progress import Progress, as_progress
from graphkit.verification.report import VerifyReport

MAX_RETRIES = 3
RAY_MISSING = "verify --ray needs Ray: pip install 'keras-graphkit[ray]'"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise GraphkitError(RAY_MISSING) from None
    return ray


def _run_shard(reference, candidate, inputs, shard: str, cwd: str, options: dict) -> dict:
    """One Ray task: one shard's report, as a dict (what ``verify --shard --json`` prints)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths as the driver's user gave them
    from graphkit.verification import verify

    try:
        return verify(reference, candidate, inputs, shard=shard, **options).to_dict()
    except GraphkitError as exc:  # a user error: the same on a retry; one line to the driver
        return {"status": "error", "error": str(exc), "cli": exc.for_cli()}


def _failure(ray, exc: Exception, shard: str, max_retries: int) -> str:
    """One line: why a shard failed for good (its worker kept dying, or an error in it)."""
    died = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)
    if isinstance(exc, died):
        return f"shard {shard} failed (retried {max_retries} times): its worker died"
    cause = getattr(exc, "cause", None) or exc
    return f"shard {shard} failed: {type(cause).__name__}: {one_line(cause)[:300]}"


def verify_on_ray(
    reference: str | os.PathLike,
    candidate: str | os.PathLike,
    inputs: str | os.PathLike | None = None,
    *,
    address: str | None = None,
    shards: int | None = None,
    num_cpus: int | None = None,
    max_retries: int = MAX_RETRIES,
    progress: Callable[[int, int], None] | Progress | None = None,
    **options: Any,
) -> VerifyReport:
    """verify over ``shards`` Ray tasks (default: one per CPU of the cluster), merged.

    ``address``: an existing Ray cluster (``ray://host:10001``, ``auto``...); None or
    ``"local"`` starts a local Ray for the run (``num_cpus`` CPUs) and stops it after.
    ``options``: verify's keyword arguments (samples, seed, batch_size, rtol...).
    ``progress``: a Progress, or a function called with (shards done, shards).
    """
    ray = _import_ray()
    if shards is not None and int(shards) < 1:
        raise GraphkitError(f"shards must be at least 1, got {shards}", cli=f"--shards must be at least 1, got {shards}")  # fmt: skip
    if options.get("save") is not None:
        raise GraphkitError("save= on Ray: save the inputs of a single run", cli="--save with --ray: save the inputs of a single run")  # fmt: skip
    for label, value in (("reference", reference), ("candidate", candidate), ("inputs", inputs)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise GraphkitError(
                f"{label}= on Ray must be a path (the workers read it), got {type(value).__name__}"
            )
    report_to = as_progress(progress, callable_is="advance")
    started = False
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}}
    if not ray.is_initialized():
        local = address in (None, "", "local")
        report_to.step("starting a local Ray" if local else f"connecting to Ray at {address}")
        try:
            if local:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, runtime_env=env)  # fmt: skip
            else:
                ray.init(address=address, log_to_driver=False, runtime_env=env)
        except Exception as exc:
            raise GraphkitError(f"Ray did not start at {address or 'local'}: {one_line(exc)}") from exc  # fmt: skip
        started = True
    try:
        count = int(shards or max(1, int(ray.cluster_resources().get("CPU", 1))))
        task = ray.remote(num_cpus=1, max_retries=int(max_retries))(_run_shard)
        paths = [str(p) if p is not None else None for p in (reference, candidate, inputs)]
        pending = {
            task.remote(*paths, f"{i}/{count}", os.getcwd(), options): i for i in range(count)
        }
        done: dict[int, dict] = {}
        report_to.step(f"0/{count} shards done")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # a worker that died more than max_retries times
                    for other in pending:
                        ray.cancel(other, force=True)
                    raise GraphkitError(_failure(ray, exc, f"{i}/{count}", max_retries)) from None
                if result.get("status") == "error":
                    for other in pending:
                        ray.cancel(other, force=True)
                    raise GraphkitError(
                        f"shard {i}/{count}: {result['error']}",
                        cli=f"shard {i}/{count}: {result.get('cli', result['error'])}",
                    )
                done[i] = result
            report_to.step(f"{len(done)}/{count} shards done")
            report_to.advance(len(done), count)
    finally:
        if started:
            ray.shutdown()
    from graphkit.verification.shards import merge_reports

    return merge_reports([(f"shard {i}/{count}", done[i]) for i in range(count)])
