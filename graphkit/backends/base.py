"""What every backend is: a signature (named inputs, index ranges), output names, ``run``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass
class InputSpec:
    """One model input. ``vocab``/``mask_zero`` are set where an Embedding or OneHot reads it."""

    name: str
    shape: tuple  # with None for dynamic axes; the first axis is the batch
    dtype: str  # numpy dtype name
    vocab: int | None = None
    mask_zero: bool = False

    @property
    def is_index(self) -> bool:
        return self.vocab is not None

    def describe(self) -> str:
        shape = "(" + ", ".join("N" if i == 0 else str(d) for i, d in enumerate(self.shape)) + ")"
        extra = f", indices in [0, {self.vocab})" if self.vocab else ""
        return f"{self.name} {shape} {self.dtype}{extra}"


class Backend:
    kind: str = "?"
    source: str = "?"
    half_precision: bool = (
        False  # computes in float16/bfloat16 somewhere (looser default tolerance)
    )
    inputs: list[InputSpec]
    output_names: list[str]
    notes: list[str]  # what the user should know about how it ran (one line each)

    def run(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def shape_problem(self, shapes: dict[str, tuple]) -> str | None:
        """Why the model's shape rules refuse inputs of these shapes, without computing
        anything; None where they accept them or the backend has no such rules."""
        return None

    def trial(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run ``batch`` once to see whether the model takes it (raises where it does not).
        Unlike ``run``, it decides nothing about how later batches run."""
        return self.run(batch)
