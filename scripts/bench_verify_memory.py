#!/usr/bin/env python
"""Peak memory of `graphkit verify` as --samples grows: it streams, so it should stay flat.

    .venv/bin/python scripts/bench_verify_memory.py [--samples 1000 100000] [--batch-size 256]

Each run is a fresh process (fixtures/masked_lstm.keras against its onehot-dense
conversion); prints samples, wall time and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import resource, sys
import graphkit
from graphkit._tf import quiet_tensorflow
quiet_tensorflow()
report = graphkit.verify(sys.argv[1], sys.argv[2], samples=int(sys.argv[3]), batch_size=int(sys.argv[4]))
assert report.exact, report.format()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    ref = ROOT / "fixtures" / "masked_lstm.keras"
    with tempfile.TemporaryDirectory() as tmp:
        cand = Path(tmp) / "onehot.keras"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "graphkit",
                "convert",
                str(ref),
                "--to",
                "onehot-dense",
                "-o",
                str(cand),
            ],
            check=True,
            capture_output=True,
        )
        for n in args.samples:
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(ref), str(cand), str(n), str(args.batch_size)],
                check=True,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - start
            print(
                f"samples {n:>7}: {seconds:6.1f} s, peak RSS {out.stdout.strip().splitlines()[-1]} MiB, exact"
            )


if __name__ == "__main__":
    main()
