#!/usr/bin/env python
"""Samples per second of `graphkit verify` in one process, and on 1 and 2 local Ray workers.

    .venv/bin/python scripts/bench_verify_scale.py [--samples 100000 400000] [--batch-size 256]

fixtures/masked_lstm.keras against its onehot-dense conversion (as
scripts/bench_verify_memory.py). The single run is a fresh process (TensorFlow's import
included); each Ray run starts a local Ray with that many CPUs, one shard per worker, and
its wall time includes Ray's start and each worker's TensorFlow import. Every Ray report
must equal the single run's, figure for figure. Prints samples per second at each size;
with two sizes, the marginal rate between them (start-up costs cancel) and the projection
to 100M samples: the start-up cost plus 100M / the marginal rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 100_000_000
SINGLE = r"""
import json, sys
import graphkit
from graphkit._tf import quiet_tensorflow
quiet_tensorflow()
report = graphkit.verify(sys.argv[1], sys.argv[2], samples=int(sys.argv[3]), batch_size=int(sys.argv[4]))
print(json.dumps(report.to_dict()))
"""
ON_RAY = r"""
import json, sys
from graphkit.verification.ray_runner import verify_on_ray
report = verify_on_ray(sys.argv[1], sys.argv[2], samples=int(sys.argv[3]),
                       batch_size=int(sys.argv[4]), num_cpus=int(sys.argv[5]), shards=int(sys.argv[5]))
print(json.dumps(report.to_dict()))
"""


def _timed(code: str, *args) -> tuple[float, dict]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return time.perf_counter() - start, json.loads(out.stdout.strip().splitlines()[-1])


def _line(label: str, n: int, seconds: float) -> str:
    return f"{label:<22} {n:>8} samples {seconds:7.1f} s  {n / seconds:9.0f} samples/s"


def _projection(label: str, runs: list[tuple[int, float]]) -> str:
    (n1, t1), (n2, t2) = runs[0], runs[-1]
    rate = (n2 - n1) / (t2 - t1)
    fixed = max(0.0, t1 - n1 / rate)
    hours = (fixed + TARGET / rate) / 3600
    return f"{label:<22} marginal {rate:9.0f} samples/s, start-up {fixed:4.1f} s: 100M samples in {hours:5.2f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    ref = ROOT / "fixtures" / "masked_lstm.keras"
    with tempfile.TemporaryDirectory() as tmp:
        cand = Path(tmp) / "onehot.keras"
        subprocess.run(
            [sys.executable, "-m", "graphkit", "convert", ref, "--to", "onehot-dense", "-o", cand],
            check=True,
            capture_output=True,
        )
        print(f"batch {args.batch_size}, {os.cpu_count()} CPUs")
        runs: dict[str, list[tuple[int, float]]] = {}
        for n in args.samples:
            seconds, single = _timed(SINGLE, ref, cand, n, args.batch_size)
            print(_line("single process", n, seconds))
            runs.setdefault("single process", []).append((n, seconds))
            for workers in args.workers:
                label = f"Ray, {workers} worker(s)"
                seconds, merged = _timed(ON_RAY, ref, cand, n, args.batch_size, workers)
                same = "same report" if merged == single else "REPORT DIFFERS"
                print(_line(label, n, seconds) + f"  {same}")
                runs.setdefault(label, []).append((n, seconds))
        if len(args.samples) > 1:
            for label, points in runs.items():
                print(_projection(label, points))


if __name__ == "__main__":
    main()
