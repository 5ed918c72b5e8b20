"""What every backend is: a signature (named inputs, index ranges), output names, ``run``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphkit.errors import GraphkitError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class TableRead:
    """A table (Embedding, OneHot, ...) whose rows an input's values select."""

    table: str  # the layer's path, e.g. "tok_pos/token_emb" (an ONNX table: its initializer)
    rows: int
    mask_zero: bool = False


@dataclass
class InputSpec:
    """One model input and what its values mean.

    ``role`` says how verify synthesizes and checks it:

    * ``"index"``: the values select table rows (read directly, through casts and reshapes
      only): valid values are ``low .. vocab - 1``; ``tables`` lists the tables read.
    * ``"range"``: the user gave the range (``--range NAME=LOW:HIGH``).
    * ``"lookup"``: raw values that a lookup layer (IntegerLookup, StringLookup, Hashing)
      maps to indices: ``values`` is its vocabulary; any value is valid (unknown values go
      to the out-of-vocabulary index).
    * ``"mask"``: a padding mask read by no table (KerasHub's ``padding_mask``): ones,
      then a zero tail.
    * ``"positions"``: indices into the sequence axis of an activation (KerasHub's
      ``mask_positions``): ``0 .. length - 1``.
    * ``None``: none of these (floats: features; integers: graphkit cannot tell).
    """

    name: str
    shape: tuple  # with None for dynamic axes; the first axis is the batch
    dtype: str  # numpy dtype name
    vocab: int | None = None  # exclusive upper bound of valid indices (role index/range)
    mask_zero: bool = False
    low: int = 0
    tables: tuple[TableRead, ...] = ()
    values: tuple | None = None
    role: str | None = None
    note: str | None = None  # why graphkit could not tell the range, where it could not

    def __post_init__(self):
        if self.role is None and self.vocab is not None:
            self.role = "index"

    @property
    def is_index(self) -> bool:
        return self.vocab is not None and self.role in ("index", "range")

    @property
    def is_lookup(self) -> bool:
        return self.role == "lookup"

    def describe(self) -> str:
        shape = "(" + ", ".join("N" if i == 0 else str(d) for i, d in enumerate(self.shape)) + ")"
        extra = f", indices in [{self.low}, {self.vocab})" if self.is_index else ""
        if self.is_lookup:
            extra = ", lookup values"
        elif self.role == "mask":
            extra = ", padding mask"
        elif self.role == "positions":
            extra = ", positions along the sequence"
        return f"{self.name} {shape} {self.dtype}{extra}"


class Backend:
    kind: str = "?"
    source: str = "?"
    half_precision: bool = (
        False  # computes in float16/bfloat16 somewhere (looser default tolerance)
    )
    # a compiled runtime (onnxruntime, LiteRT) that rounds unlike Keras: verify earns its
    # tolerance from a float64 run of the Keras side, or uses the fixed runtime tolerance
    compiled_runtime: bool = False
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


def as_declared_dtype(x, spec: InputSpec, declared_by: str) -> np.ndarray:
    """``x`` in the dtype the model file declares for input ``spec``; integers that would not
    fit are refused, not wrapped (an int64 Keras input against a file with int32 inputs).
    ``declared_by`` names the file in the message ("the ONNX model")."""
    x = np.asarray(x)
    want = np.dtype(spec.dtype)
    if x.dtype.kind in "iu" and want.kind in "iu" and x.size and x.dtype != want:
        info = np.iinfo(want)
        if x.min() < info.min or x.max() > info.max:
            raise GraphkitError(
                f"input {spec.name!r}: values outside the range of {want}, the type "
                f"{declared_by} declares for it"
            )
    return np.ascontiguousarray(x, dtype=want)
