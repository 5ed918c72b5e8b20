"""Per-output running statistics: max abs/rel error, worst element, elements over tolerance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class OutputStats:
    """Running comparison of one output; nothing but scalars and the worst element is kept."""

    name: str
    rtol: float
    atol: float
    shape: tuple | None = None
    samples: int = 0
    elements: int = 0
    exceeding: int = 0
    nan_mismatch: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_index: tuple | None = None
    worst_reference: float | None = None
    worst_candidate: float | None = None
    exact: bool = True
    shape_mismatch: str | None = None
    dtype: str = ""
    tolerance_from: str = ""  # where rtol/atol came from (given, earned, fixed default)

    def update(self, ref: np.ndarray, cand: np.ndarray, offset: int) -> None:
        if ref.shape != cand.shape:
            if self.shape_mismatch is None:
                self.shape_mismatch = f"reference {ref.shape} vs candidate {cand.shape}"
            self.exact = False
            return
        self.dtype = self.dtype or str(ref.dtype)
        self.shape = (self.samples + ref.shape[0],) + tuple(ref.shape[1:]) if ref.ndim else ()
        self.samples += ref.shape[0] if ref.ndim else 1
        self.elements += ref.size
        r = ref.astype("float64")
        c = cand.astype("float64")
        rn, cn = np.isnan(r), np.isnan(c)
        nan_bad = rn != cn
        both_nan = rn & cn
        diff = np.abs(np.where(both_nan, 0.0, r) - np.where(both_nan, 0.0, c))
        diff = np.where(nan_bad, np.inf, diff)
        exceed = (diff > self.atol + self.rtol * np.abs(np.where(rn, 0.0, r))) | nan_bad
        self.exceeding += int(exceed.sum())
        self.nan_mismatch += int(nan_bad.sum())
        if ref.dtype != cand.dtype or not np.array_equal(ref, cand, equal_nan=True):
            self.exact = False
        if diff.size:
            flat = int(np.argmax(diff))
            worst = float(diff.reshape(-1)[flat])
            if worst > self.max_abs or (self.worst_index is None and worst >= self.max_abs):
                idx = np.unravel_index(flat, diff.shape)
                self.max_abs = worst
                self.worst_index = (
                    (int(idx[0]) + offset,) + tuple(int(i) for i in idx[1:]) if diff.ndim else ()
                )
                self.worst_reference = float(r[idx])
                self.worst_candidate = float(c[idx])
            nz = np.abs(r) > 0
            if nz.any():
                rel = float(
                    np.max(np.where(nz & ~nan_bad, diff / np.where(nz, np.abs(r), 1.0), 0.0))
                )
                self.max_rel = max(self.max_rel, rel)

    @property
    def max_abs_error(self) -> float:
        """The largest absolute difference: the name the JSON and JUnit reports use."""
        return self.max_abs

    @property
    def max_rel_error(self) -> float:
        """The largest relative difference (elements where the reference is 0 left out)."""
        return self.max_rel

    @property
    def ok(self) -> bool:
        return self.shape_mismatch is None and self.exceeding == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": self.dtype,
            "max_abs_error": json_float(self.max_abs),
            "max_rel_error": json_float(self.max_rel),
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "worst_reference": json_float(self.worst_reference),
            "worst_candidate": json_float(self.worst_candidate),
            "elements": self.elements,
            "exceeding": self.exceeding,
            "nan_mismatch": self.nan_mismatch,
            "exact": self.exact,
            "rtol": self.rtol,
            "atol": self.atol,
            "tolerance_from": self.tolerance_from,
            "shape_mismatch": self.shape_mismatch,
            "ok": self.ok,
        }


def json_float(x):
    """A float for JSON: "inf"/"nan" spelled out, numpy scalars as Python floats."""
    if x is None:
        return None
    if math.isinf(x):
        return "inf"
    if math.isnan(x):
        return "nan"
    return float(x)
