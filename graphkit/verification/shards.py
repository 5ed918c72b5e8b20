"""verify in shards that merge exactly: a shard plan, a shard's mergeable state, the merge.

A single run's batches are a deterministic sequence (``batch_plan`` for synthesized inputs,
``batches_of`` for files). Shard ``I`` of ``N`` takes a contiguous range of batch indices;
for synthesized inputs it regenerates the stream and skips the batches before its range
without running the models, so its batches are exactly the single run's. What depends on
"the first batch" (the earned tolerance, the first-batch note) is computed from the global
first batch on every shard. The statistics verify keeps then merge exactly:

* per output: sums (elements, over tolerance, NaN mismatches, samples), ``exact`` (and),
  ``max_rel`` (max) and ``max_abs`` with its element (the earliest wins ties, as in one run);
* coverage: the set of rows seen per table (runs of rows in the JSON), united;
* weights and notes: the same on every shard (checked);
* where the models part: the first shard (in order) that located it.

``merge_reports`` refuses shards of different runs (a fingerprint of the run's parameters),
and names a missing or duplicated shard.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import GraphkitError

STATE_VERSION = 1


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): a contiguous range of the run's batches."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def batches(self, total_batches: int) -> tuple[int, int]:
        """The batch indices ``[start, stop)`` this shard runs: an even split, the larger
        parts last where ``count`` does not divide ``total_batches``."""
        return (
            self.index * total_batches // self.count,
            (self.index + 1) * total_batches // self.count,
        )


def parse_shard(value: str | Shard | tuple[int, int] | None) -> Shard | None:
    """``"I/N"`` (0 <= I < N), a ``Shard`` or ``(I, N)``."""
    if value is None or isinstance(value, Shard):
        return value
    if isinstance(value, tuple):
        index, count = value
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
        if not match:
            raise GraphkitError(
                f"shard {value!r}: expected I/N, e.g. 0/8 (shard I of N, counted from 0)",
                cli=f"--shard {value!r}: expected I/N, e.g. 0/8 (shard I of N, counted from 0)",
            )
        index, count = int(match.group(1)), int(match.group(2))
    if not (count >= 1 and 0 <= index < count):
        raise GraphkitError(
            f"shard {index}/{count}: I must be in 0..N-1 and N at least 1",
            cli=f"--shard {index}/{count}: I must be in 0..N-1 and N at least 1",
        )
    return Shard(int(index), int(count))


def fingerprint(parameters: dict[str, Any]) -> str:
    """A short hash of a run's parameters: shards of one run share it."""
    text = json.dumps(parameters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_identity(path: str | os.PathLike) -> list:
    """A file or folder as the fingerprint sees it: its path and size (sizes of a folder's
    files), cheap enough for every shard, and a changed file on one worker shows."""
    p = Path(path)
    if p.is_dir():
        return [str(p), sorted((str(f.relative_to(p)), f.stat().st_size) for f in p.rglob("*") if f.is_file())]  # fmt: skip
    return [str(p), p.stat().st_size if p.exists() else None]


def arrays_identity(arrays: dict[str, np.ndarray]) -> str:
    """Given arrays (verify's ``inputs=dict``) as the fingerprint sees them: their bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.shape}{a.dtype}".encode())
        h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- state


@dataclass
class ShardState:
    """What a shard's report adds so that shards merge: see the module docstring."""

    shard: Shard
    batches: tuple[int, int]  # [start, stop) of the run's batch indices
    first_sample: int  # the global index of this shard's first sample
    total_batches: int
    total_samples: int
    fingerprint: str
    outputs: list[dict]  # OutputStats fields, floats encoded (see encode_float)
    coverage: dict  # CoverageCounter.state()
    specs: list[dict]  # the InputSpecs, whole

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "index": self.shard.index,
            "count": self.shard.count,
            "batches": list(self.batches),
            "first_sample": self.first_sample,
            "total_batches": self.total_batches,
            "total_samples": self.total_samples,
            "fingerprint": self.fingerprint,
            "outputs": self.outputs,
            "coverage": self.coverage,
            "specs": self.specs,
        }


def encode_float(x):
    """JSON keeps every finite float exactly (repr); infinities and NaN as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def decode_float(x):
    return float(x) if isinstance(x, str) else x


def stats_state(stats) -> dict:
    """An OutputStats' fields, as JSON."""
    out = {}
    for f in fields(stats):
        value = getattr(stats, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else encode_float(value)
    return out


def stats_from_state(state: dict):
    from graphkit.verification.stats import OutputStats

    kwargs = {}
    for f in fields(OutputStats):
        value = state[f.name]
        if f.name in ("shape", "worst_index") and value is not None:
            value = tuple(value)
        elif isinstance(value, str) and f.name in (
            "max_abs",
            "max_rel",
            "worst_reference",
            "worst_candidate",
            "rtol",
            "atol",
        ):
            value = decode_float(value)
        kwargs[f.name] = value
    return OutputStats(**kwargs)


def merge_stats(parts: list) -> Any:
    """One output's statistics over consecutive shards, as one run over their batches
    would have kept them (``OutputStats.update``'s rules, applied shard by shard)."""
    merged = parts[0]
    for s in parts[1:]:
        if merged.shape_mismatch is None:
            merged.shape_mismatch = s.shape_mismatch
        merged.exact = merged.exact and s.exact
        merged.dtype = merged.dtype or s.dtype
        merged.samples += s.samples
        if s.shape is not None:
            merged.shape = (merged.samples,) + tuple(s.shape[1:]) if s.shape else ()
        merged.elements += s.elements
        merged.exceeding += s.exceeding
        merged.nan_mismatch += s.nan_mismatch
        if s.worst_index is not None and (
            s.max_abs > merged.max_abs
            or (merged.worst_index is None and s.max_abs >= merged.max_abs)
        ):
            merged.max_abs = s.max_abs
            merged.worst_index = s.worst_index
            merged.worst_reference = s.worst_reference
            merged.worst_candidate = s.worst_candidate
        merged.max_rel = max(merged.max_rel, s.max_rel)
    return merged


def weights_from_dict(data: dict):
    """A WeightsReport back from its ``to_dict()`` (its timing is not kept)."""
    from graphkit.verification.weights import WeightPair, WeightsReport

    pairs = [
        WeightPair(**{f.name: p[f.name] for f in fields(WeightPair)} | {"shape": tuple(p["shape"])})
        for p in data["pairs"]
    ]
    return WeightsReport(
        pairs, list(data["candidate_only"]), list(data["notes"]), compared=data["compared"]
    )


def divergence_from_dict(data: dict):
    """A Divergence back from its ``to_dict()`` (its timing is not kept)."""
    from graphkit.verification.locate import Divergence, LayerComparison

    compared = [
        LayerComparison(
            c["layer"],
            c["candidate"],
            decode_float(c["max_abs"]),
            c["ok"],
            c["shape_mismatch"],
            c["onnx_tensor"],
        )
        for c in data["compared"]
    ]
    return Divergence(
        data["first"],
        decode_float(data["first_max_abs"]),
        data["first_candidate"],
        data["upstream_equal"],
        compared,
        data["note"],
    )


def spec_state(spec) -> dict:
    data = asdict(spec)
    data["shape"] = list(spec.shape)
    data["values"] = list(spec.values) if spec.values is not None else None
    data["tables"] = [asdict(t) for t in spec.tables]
    return data


def spec_from_state(data: dict):
    from graphkit.backends.base import InputSpec, TableRead

    data = dict(data)
    data["shape"] = tuple(data["shape"])
    data["values"] = tuple(data["values"]) if data["values"] is not None else None
    data["tables"] = tuple(TableRead(**t) for t in data["tables"])
    return InputSpec(**data)


# ----------------------------------------------------------------------------- merge


def load_shard_reports(paths: list[str | os.PathLike]) -> list[tuple[str, dict]]:
    """Read ``verify --shard I/N --json`` reports: ``[(path, report), ...]``."""
    out = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise GraphkitError(f"--merge {path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise GraphkitError(f"--merge {path}: not a JSON report ({exc})") from None
        out.append((str(path), data))
    return out


def merge_reports(reports: list[tuple[str, dict]] | list[dict]):
    """The one VerifyReport that a single run over all the shards' batches gives.

    ``reports``: shard reports (``VerifyReport.to_dict()`` of ``verify(..., shard=...)``),
    each optionally with where it came from. Raises GraphkitError naming a missing or
    duplicated shard, a report of another run, or a report that is no shard's.
    """
    from graphkit.verification.coverage import merge_coverage
    from graphkit.verification.report import VerifyReport

    named = [r if isinstance(r, tuple) else (f"report {i}", r) for i, r in enumerate(reports)]
    if not named:
        raise GraphkitError("--merge: no shard reports given")
    for where, data in named:
        if data.get("status") == "error":
            raise GraphkitError(f"--merge {where}: that shard could not run: {data.get('error')}")
        if not isinstance(data.get("shard"), dict):
            raise GraphkitError(
                f"--merge {where}: not a shard report (write them with verify --shard I/N --json)"
            )
        if data["shard"].get("version") != STATE_VERSION:
            raise GraphkitError(f"--merge {where}: shard report version {data['shard'].get('version')}, expected {STATE_VERSION}")  # fmt: skip
    first_where, first = named[0]
    for where, data in named[1:]:
        if data["shard"]["fingerprint"] != first["shard"]["fingerprint"]:
            raise GraphkitError(
                f"--merge {where} is a shard of another run than {first_where} (models, "
                "inputs, seed, samples, length, batch size or tolerances differ)"
            )
        if data["shard"]["count"] != first["shard"]["count"]:
            raise GraphkitError(
                f"--merge {where} is shard {data['shard']['index']}/{data['shard']['count']}, "
                f"{first_where} is {first['shard']['index']}/{first['shard']['count']}"
            )
    count = first["shard"]["count"]
    by_index: dict[int, tuple[str, dict]] = {}
    for where, data in named:
        i = data["shard"]["index"]
        if i in by_index:
            raise GraphkitError(
                f"--merge: shard {i}/{count} given twice ({by_index[i][0]} and {where})"
            )
        by_index[i] = (where, data)
    missing = [f"{i}/{count}" for i in range(count) if i not in by_index]
    if missing:
        raise GraphkitError(f"--merge: missing shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} (of {count})")  # fmt: skip
    ordered = [by_index[i] for i in range(count)]
    for (where, data), (prev_where, prev) in zip(ordered[1:], ordered):
        if data["shard"]["batches"][0] != prev["shard"]["batches"][1]:
            raise GraphkitError(f"--merge {where}: its batches do not follow {prev_where}'s")
        for key in ("weights", "notes", "inputs", "reference", "candidate", "inputs_from"):
            if data.get(key) != prev.get(key):
                raise GraphkitError(
                    f"--merge {where} and {prev_where} disagree on {key!r}: not one run"
                )
    outputs = [
        merge_stats([stats_from_state(d["shard"]["outputs"][k]) for _, d in ordered])
        for k in range(len(first["shard"]["outputs"]))
    ]
    fed: dict[str, tuple[tuple, str]] = {}
    values: dict[str, tuple] = {}
    for _, data in ordered:  # the last batch's shape, with the samples before it
        for name, entry in data["fed"].items():
            fed[name] = (tuple(entry["shape"]), entry["dtype"])
            if entry.get("min") is not None:
                lo, hi = entry["min"], entry["max"]
                if name in values:
                    lo, hi = min(lo, values[name][0]), max(hi, values[name][1])
                values[name] = (lo, hi)
    divergence = next(
        (divergence_from_dict(d["divergence"]) for _, d in ordered if d["divergence"]), None
    )
    specs = [spec_from_state(s) for s in first["shard"]["specs"]]
    return VerifyReport(
        first["reference"],
        first["candidate"],
        sum(d["samples"] for _, d in ordered),
        first["inputs_from"],
        first["seed"],
        outputs,
        specs,
        fed,
        list(first["notes"]),
        seq_len=first["seq_len"],
        coverage=merge_coverage([d["shard"]["coverage"] for _, d in ordered]),
        values=values,
        divergence=divergence,
        weights=weights_from_dict(first["weights"]) if first["weights"] is not None else None,
    )
