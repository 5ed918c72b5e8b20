"""The verify report: table, JSON and JUnit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.backends.base import InputSpec
from graphkit.verification.coverage import TableCoverage, describe_coverage
from graphkit.verification.stats import OutputStats


@dataclass
class VerifyReport:
    reference: str
    candidate: str
    samples: int
    input_source: str
    seed: int | None
    outputs: list[OutputStats] = field(default_factory=list)
    inputs: list[InputSpec] = field(default_factory=list)
    # the shapes and dtypes of the data that ran, all batches together: name -> (shape, dtype)
    fed: dict[str, tuple[tuple, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seq_len: int | None = None  # length of the synthesized variable axes (None: none, or a file)
    coverage: list[TableCoverage] = field(default_factory=list)  # rows the inputs reached
    values: dict[str, tuple] = field(default_factory=dict)  # input -> the data's (min, max)
    divergence: Any = None  # graphkit.verification.locate.Divergence, where outputs differed
    weights: Any = None  # graphkit.verification.weights.WeightsReport
    shard: Any = None  # graphkit.verification.shards.ShardState: a shard's mergeable state

    @property
    def equivalent(self) -> bool:
        return all(o.ok for o in self.outputs) and (self.weights is None or self.weights.ok)

    @property
    def exact(self) -> bool:
        return all(o.exact for o in self.outputs)

    def __bool__(self) -> bool:  # `assert graphkit.verify(a, b)` reads naturally in tests
        return self.equivalent

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "equivalent" if self.equivalent else "not-equivalent",
            "reference": self.reference,
            "candidate": self.candidate,
            "equivalent": self.equivalent,
            "exact": self.exact,
            "samples": self.samples,
            "inputs_from": self.input_source,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "inputs": [
                {
                    "name": s.name,
                    "shape": list(s.shape),
                    "dtype": s.dtype,
                    "role": s.role,
                    "vocab": s.vocab,
                    "low": s.low if s.is_index else None,
                    "mask_zero": s.mask_zero,
                    "tables": [t.table for t in s.tables],
                    "note": s.note,
                }
                for s in self.inputs
            ],
            "fed": {
                name: {
                    "shape": list(shape),
                    "dtype": dtype,
                    "min": self.values.get(name, (None, None))[0],
                    "max": self.values.get(name, (None, None))[1],
                }
                for name, (shape, dtype) in self.fed.items()
            },
            "outputs": [o.to_dict() for o in self.outputs],
            "coverage": [c.to_dict() for c in self.coverage],
            "divergence": self.divergence.to_dict() if self.divergence is not None else None,
            "weights": self.weights.to_dict() if self.weights is not None else None,
            "notes": self.notes,
        } | ({"shard": self.shard.to_dict()} if self.shard is not None else {})

    def describe_inputs(self) -> str:
        """``tokens (256, 16) int32 in [0, 50)``: what really ran, one entry per input."""
        parts = []
        for spec in self.inputs:
            shape, dtype = self.fed.get(spec.name, (spec.shape, spec.dtype))
            text = f"{spec.name} {tuple(shape)} {dtype}"
            if spec.is_index:
                text += f" in [{spec.low}, {spec.vocab})"
            elif spec.is_lookup:
                text += " (lookup values)"
            elif spec.role == "mask":
                text += " (padding mask)"
            elif spec.role == "positions":
                text += " (positions along the sequence)"
            if self.seed is None and spec.name in self.values:  # given data: its own range
                lo, hi = self.values[spec.name]
                text += f", values {_number(lo)}..{_number(hi)}"
            parts.append(text)
        return ", ".join(parts)

    def format(self) -> str:
        lines = (
            [
                f"shard:     {self.shard.shard} (batches {self.shard.batches[0]}..{self.shard.batches[1] - 1} "
                f"of {self.shard.total_batches}, {self.samples} of {self.shard.total_samples} "
                "samples; merge the shards' --json reports with verify --merge)"
            ]
            if self.shard is not None
            else []
        )
        lines += [
            f"reference: {self.reference}",
            f"candidate: {self.candidate}",
            f"inputs:    {self.samples} sample{'s' if self.samples != 1 else ''}, "
            f"{self.input_source}: {self.describe_inputs()}",
            "",
        ]
        head = [
            "output",
            "shape",
            "max abs err",
            "max rel err",
            "worst at",
            "> tol",
            "tolerance",
            "result",
        ]
        rows = []
        for o in self.outputs:
            if o.shape_mismatch:
                rows.append(
                    [o.name, "-", "-", "-", "-", "-", "-", f"SHAPE MISMATCH: {o.shape_mismatch}"]
                )
                continue
            result = ("exact" if o.exact else "ok") if o.ok else "DIFFERS"
            rows.append(
                [
                    o.name,
                    "x".join(str(d) for d in o.shape) if o.shape else "()",
                    f"{o.max_abs:.3g}",
                    f"{o.max_rel:.3g}",
                    str(tuple(o.worst_index))
                    if o.worst_index is not None and o.max_abs > 0
                    else "-",
                    f"{o.exceeding}/{o.elements}",
                    f"rtol={o.rtol:.3g} atol={o.atol:.3g}",
                    result,
                ]
            )
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for row in [head] + rows:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        for o in self.outputs:
            if not o.ok and o.worst_index is not None and o.shape_mismatch is None:
                lines.append(
                    f"  {o.name}: worst element {tuple(o.worst_index)}: reference {o.worst_reference!r}, "
                    f"candidate {o.worst_candidate!r}"
                )
        for o in self.outputs:
            if o.tolerance_from and not o.tolerance_from.startswith("fixed"):
                lines.append(f"tolerance: {o.name}: {o.tolerance_from}")
        if self.divergence is not None:
            lines.append(f"where:     {self.divergence.line()}")
        lines += [f"coverage: {c.line()}" for c in self.coverage]
        if self.weights is not None:
            lines += self.weights.format_lines()
        lines += [f"note: {note}" for note in self.notes]
        lines.append("")
        if self.equivalent:
            lines.append(f"EQUIVALENT ({self.basis()})")
        else:
            bad = sum(1 for o in self.outputs if not o.ok)
            why = [f"{bad} of {len(self.outputs)} output(s) differ"] if bad else []
            if self.weights is not None and not self.weights.ok:
                n = len(self.weights.differing)
                why.append(f"{n} copied weight{'s' if n != 1 else ''} differ")
            lines.append(f"NOT EQUIVALENT: {'; '.join(why)}")
        return "\n".join(lines)

    def basis(self) -> str:
        """What the verdict rests on: ``bit for bit on 256 samples covering every row of 2
        tables`` / ``within tolerance on 64 samples from x.npz covering 12/50 rows of 'e'``."""
        how = "bit for bit" if self.exact else "within tolerance"
        n = self.samples
        text = f"{how} on {n} sample{'s' if n != 1 else ''}"
        covered = describe_coverage(self.coverage)
        return f"{text} {covered}" if covered else text

    def to_junit(self) -> str:
        """One test case per output, and one for the weights where they were compared."""
        cases = []
        for o in self.outputs:
            msg = None
            if not o.ok:
                msg = o.shape_mismatch or (
                    f"{o.exceeding} of {o.elements} elements exceed rtol={o.rtol:g} atol={o.atol:g}; "
                    f"max abs error {o.max_abs:.6g} at {tuple(o.worst_index or ())}"
                )
                if self.divergence is not None:
                    msg += f"; {self.divergence.line()}"
            out = f"max_abs_error={o.max_abs:.6g} max_rel_error={o.max_rel:.6g} exact={o.exact}"
            cases.append((o.name, msg, out))
        if self.weights is not None and self.weights.compared:
            failures = self.weights.failures()
            cases.append(("weights", "; ".join(failures) or None, self.weights.summary()))
        # here, not at the top: xml.sax pulls urllib, http and ssl (20 ms of every start-up)
        from xml.sax.saxutils import escape, quoteattr

        failed = sum(1 for _, msg, _ in cases if msg)
        name = f"{Path(self.reference).name} vs {Path(self.candidate).name}"
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<testsuites name="graphkit verify" tests="{len(cases)}" failures="{failed}">',
            f'  <testsuite name={quoteattr(name)} tests="{len(cases)}" failures="{failed}">',
        ]
        for case, msg, out in cases:
            parts.append(f'    <testcase classname="graphkit.verification" name={quoteattr(case)}>')
            if msg:
                parts.append(f"      <failure message={quoteattr(msg)}>{escape(msg)}</failure>")
            parts.append(f"      <system-out>{escape(out)}</system-out>")
            parts.append("    </testcase>")
        parts += ["  </testsuite>", "</testsuites>", ""]
        return "\n".join(parts)


def _number(x) -> str:
    return str(x) if isinstance(x, (bool, int)) else f"{x:.4g}"
