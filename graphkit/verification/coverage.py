"""Which table rows the inputs that ran reached: measured from the data, batch by batch.

A verdict rests on the rows it saw: two models that differ in a row no input selects agree
on every sample. So verify counts, for every table an input reads (``InputSpec.tables``),
the distinct rows its values selected, and for every lookup input the vocabulary values
it saw, whatever the inputs' source (synthesized or a file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphkit.backends.base import InputSpec

# Row bitmaps up to this many rows (1 byte a row); larger tables count distinct rows in a set.
BITMAP_ROWS = 1 << 26


@dataclass
class TableCoverage:
    """Rows of one table that the inputs selected (or values of one lookup's vocabulary)."""

    table: str
    rows: int
    inputs: list[str] = field(default_factory=list)
    covered: int = 0
    kind: str = "table"  # or "lookup"

    @property
    def complete(self) -> bool:
        return self.covered >= self.rows

    def line(self) -> str:
        unit = "rows" if self.kind == "table" else "vocabulary values"
        return f"{', '.join(self.inputs)} -> {self.table}: {self.covered}/{self.rows} {unit}"

    def to_dict(self) -> dict:
        return {
            "table": self.table,
            "kind": self.kind,
            "inputs": self.inputs,
            "rows": self.rows,
            "covered": self.covered,
            "complete": self.complete,
        }


class CoverageCounter:
    """Counts, batch by batch, the distinct rows of each table (values of each lookup)."""

    def __init__(self, specs: list[InputSpec]):
        self._tables: dict[str, TableCoverage] = {}
        self._seen: dict[str, np.ndarray | set] = {}
        self._reads: list[tuple[str, str, int]] = []  # (input, table, rows)
        self._lookups: dict[str, dict] = {}
        for spec in specs:
            if spec.is_index:
                for t in spec.tables:
                    cov = self._tables.setdefault(t.table, TableCoverage(t.table, int(t.rows)))
                    if spec.name not in cov.inputs:
                        cov.inputs.append(spec.name)
                    if t.table not in self._seen:
                        self._seen[t.table] = (
                            np.zeros(int(t.rows), dtype=bool) if t.rows <= BITMAP_ROWS else set()
                        )
                    self._reads.append((spec.name, t.table, int(t.rows)))
            elif spec.is_lookup and spec.values:
                key = f"lookup vocabulary of {spec.name!r}"
                self._tables[key] = TableCoverage(key, len(spec.values), [spec.name], kind="lookup")
                self._lookups[spec.name] = {"key": key, "values": set(spec.values), "seen": set()}

    def update(self, batch: dict[str, np.ndarray]) -> None:
        for name, table, rows in self._reads:
            x = np.asarray(batch[name]).reshape(-1)
            if x.dtype.kind == "f":
                x = x[np.isfinite(x)]
            x = x[(x >= 0) & (x < rows)].astype(np.int64)
            seen = self._seen[table]
            if isinstance(seen, set):
                seen.update(np.unique(x).tolist())
            else:
                seen[x] = True
        for name, entry in self._lookups.items():
            values = np.unique(np.asarray(batch[name]).reshape(-1))
            if len(entry["seen"]) < len(entry["values"]):
                entry["seen"].update(
                    v
                    for v in (x.item() if hasattr(x, "item") else x for x in values)
                    if v in entry["values"]
                )

    def state(self) -> dict:
        """The rows seen per table (runs ``[first, last]``) and the lookup values seen, with
        the tables' sizes: what ``merge_coverage`` unites over shards."""
        tables = []
        for t in self._tables.values():
            entry = t.to_dict()
            if t.table in self._seen:
                seen = self._seen[t.table]
                rows = (
                    np.fromiter(seen, np.int64) if isinstance(seen, set) else np.flatnonzero(seen)
                )
                entry["seen"] = row_runs(rows)
            tables.append(entry)
        lookups = {e["key"]: sorted(e["seen"], key=repr) for e in self._lookups.values()}
        for entry in tables:
            if entry["table"] in lookups:
                entry["seen_values"] = lookups[entry["table"]]
        return {"tables": tables}

    def result(self) -> list[TableCoverage]:
        for table, seen in self._seen.items():
            self._tables[table].covered = len(seen) if isinstance(seen, set) else int(seen.sum())
        for entry in self._lookups.values():
            self._tables[entry["key"]].covered = len(entry["seen"])
        return list(self._tables.values())


def merge_coverage(states: list[dict]) -> list[TableCoverage]:
    """The coverage of one run over the shards whose ``CoverageCounter.state()`` these are:
    the union of the rows (values) each saw."""
    out = []
    for k, first in enumerate(states[0]["tables"] if states else []):
        parts = [s["tables"][k] for s in states]
        cov = TableCoverage(
            first["table"], first["rows"], list(first["inputs"]), kind=first["kind"]
        )
        if "seen" in first:
            cov.covered = int(np.unique(np.concatenate([runs_rows(p["seen"]) for p in parts])).size)
        else:
            cov.covered = len({repr(v) for p in parts for v in p.get("seen_values", [])})
        out.append(cov)
    return out


def describe_coverage(tables: list[TableCoverage]) -> str:
    """``covering every row of 2 tables`` / ``covering 1200/1500 rows of 'emb'`` (for verdicts)."""
    rows = [t for t in tables if t.kind == "table"]
    if not rows:
        return ""
    partial = [t for t in rows if not t.complete]
    if not partial:
        n = len(rows)
        return f"covering every row of {n} table{'s' if n != 1 else ''}"
    return "covering " + ", ".join(f"{t.covered}/{t.rows} rows of {t.table!r}" for t in partial)


# Rows seen as runs: how a shard's state stores them (a JSON report holds it).
def row_runs(rows: np.ndarray) -> list[list[int]]:
    """Sorted distinct rows as ``[[first, last], ...]`` runs."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if not rows.size:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts = np.concatenate([[rows[0]], rows[breaks + 1]])
    ends = np.concatenate([rows[breaks], [rows[-1]]])
    return [[int(a), int(b)] for a, b in zip(starts, ends)]


def runs_rows(runs: list[list[int]]) -> np.ndarray:
    if not runs:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b + 1, dtype=np.int64) for a, b in runs])
