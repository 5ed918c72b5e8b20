"""Rule: a Lambda proven to compute a one-hot -> graphkit's ``OneHot`` (``--unsafe`` only).

A Lambda reaches a model only when the user loaded it with ``--unsafe`` (safe mode refuses
them, or adopts them from their config without running them: ``graphkit.lambdas.adopt``).
Then graphkit may run it, so it proves what it computes: it feeds every index of
``[0, depth)`` and 256 beyond, in two orders, and accepts the Lambda only if every row is
``one_hot(i)``, ``one_hot(i % 256)`` or ``one_hot(i % 65536)`` (the narrowing casts of old
recipes), with zeros past the depth. graphkit's ``OneHot`` (with ``wrap`` for a cast) then
computes the same for every probed index. Anything else is kept, with the reason.

The proof's work is (depth + 256) x depth output values: it runs in chunks of at most
``LAMBDA_PROOF_CHUNK_VALUES`` values, and a depth over ``LAMBDA_PROOF_MAX_DEPTH`` is kept
unproven (``graphkit.limits``), adoptable on the user's word with ``--onehot-lambda``.
"""

from __future__ import annotations

from graphkit.limits import LAMBDA_PROOF_CHUNK_VALUES, LAMBDA_PROOF_MAX_DEPTH
from graphkit.rules.base import Chain, Match, Refusal

NAME = "lambda_to_onehot"
BEYOND = 256  # probe this many indices past the depth (shows the wrap of a uint8 cast)
WRAPS = (None, 256, 65536)


class LambdaToOneHot:
    name = NAME
    summary = (
        "a Lambda proven (by running it, --unsafe) to be one_hot(cast(x)) -> graphkit's OneHot"
    )
    targets = ("*",)
    phase = "normalise"
    source = None
    anchor_label = "Lambda"
    optional = True
    exact = True
    inspect = {
        "label": "Lambda",
        "role": "lambda",
        "yes": "one-hot",
        "becomes": "-> OneHot",
        "no": "kept",
    }

    def anchors(self, layer) -> bool:
        import keras

        return isinstance(layer, keras.layers.Lambda)

    def index_range(self, layer) -> tuple[int, bool] | None:
        if not self.anchors(layer):
            return None
        depth = _output_depth(layer)
        return (depth, False) if depth else None

    def covers(self, layer, graph) -> list[str]:
        return []

    def check(self, layer, graph) -> Refusal | None:
        if getattr(layer, "mask", None) is not None:
            return Refusal("it also computes a mask (mask=...): not a plain one-hot", "kept")
        sites = graph.call_sites(layer)
        shapes = {s.input_shape for s in sites}
        if not sites or None in shapes or len(shapes) != 1:
            return Refusal("its input shape is unknown or differs between calls", severity="kept")
        depth = _output_depth(layer)
        if depth is None:
            return Refusal(
                "its output does not add a last axis of known size to its input (not a one-hot)",
                severity="kept",
            )
        # Running it is the proof (cheap: depth + 256 indices), and inspect shows its outcome.
        proof = prove(layer, next(iter(shapes)), depth)
        return proof if isinstance(proof, Refusal) else None

    def rewrite(self, layer, graph, ctx) -> Match | Refusal:
        from graphkit.layers import OneHot

        (shape,) = {s.input_shape for s in graph.call_sites(layer)}
        depth = _output_depth(layer)
        proof = prove(layer, shape, depth)
        if isinstance(proof, Refusal):
            return proof
        wrap, unstable = proof
        ctx.release(layer.name)
        onehot = OneHot(
            depth, wrap=wrap, name=ctx.unique_name(layer.name), dtype=layer.dtype_policy
        )
        probed = f"0..{depth + BEYOND - 1}"
        ctx.note(
            f"proven by running it on indices {probed}: one_hot(i{f' % {wrap}' if wrap else ''}"
            f", {depth})"
        )
        if len(unstable):
            first, last = int(unstable[0]), int(unstable[-1])
            ctx.note(
                f"for {len(unstable)} indices in {first}..{last} it gave row {wrap - 1} where a "
                f"wrap gives row i % {wrap}: TensorFlow casts floats past the range of the "
                "narrow type by saturating in vectorised code and wrapping in scalar code, so "
                "the original model's output depends on the batch; graphkit's OneHot always "
                f"wraps (i % {wrap}), as scalar code and tf_keras' recipe did"
            )
        if wrap and depth > wrap:
            from graphkit.lambdas.adopt import aliasing_note

            ctx.note(aliasing_note(layer.name, depth, wrap))
        return Match(
            replacements={id(layer): Chain([onehot])},
            new_layer_names=[onehot.name],
            replaced_names=[layer.name],
            status="normalised",
        )


def _output_depth(layer) -> int | None:
    try:
        inputs, outputs = layer.input, layer.output
    except Exception:
        return None
    if isinstance(inputs, (list, tuple, dict)) or isinstance(outputs, (list, tuple, dict)):
        return None
    if len(outputs.shape) != len(inputs.shape) + 1 or not isinstance(outputs.shape[-1], int):
        return None
    return int(outputs.shape[-1])


def _probe_batch(indices, shape):
    """``indices`` laid out in a batch of input shape ``shape`` (padded with 0)."""
    import numpy as np

    tail = list(shape[1:])
    free = [i for i, d in enumerate(tail) if d is None]
    if free:  # one variable axis holds them all
        for i in free:
            tail[i] = 1
        tail[free[-1]] = len(indices)
    per_row = int(np.prod(tail)) if tail else 1
    rows = -(-len(indices) // per_row)
    flat = np.zeros(rows * per_row, dtype=np.int64)
    flat[: len(indices)] = indices
    return flat.reshape([rows] + tail)


def prove(layer, shape, depth):
    """(wrap, unstable indices) under which ``layer`` is exactly a one-hot, or a Refusal.

    ``wrap`` is None, 256 or 65536. ``unstable`` lists the indices of the vocabulary for
    which the Lambda gave the saturated row (255) instead of the wrapped one: TensorFlow's
    cast of a float >= 256 to uint8 saturates in vectorised code and wraps in scalar code, so
    the original model's output depends on the batch. graphkit's OneHot always wraps.
    Each row is reduced to the index it is hot at (-1 all zero, -2 not a one-hot row): no
    matrix of vocabulary size is built besides the Lambda's own output.
    """
    cached = getattr(layer, "_graphkit_proof", None)
    if cached is not None and cached[0] == (tuple(shape), depth):
        return cached[1]
    result = _prove(layer, shape, depth)
    object.__setattr__(layer, "_graphkit_proof", ((tuple(shape), depth), result))
    return result


def _hot_index(rows):
    """Per row: the column holding the single 1, -1 for a zero row, -2 for anything else."""
    import numpy as np

    hot = rows.argmax(axis=1)
    peak = rows[np.arange(len(rows)), hot]
    nonzero = np.count_nonzero(rows, axis=1)
    return np.where(nonzero == 0, -1, np.where((nonzero == 1) & (peak == 1), hot, -2))


def _chunk_size(shape, depth) -> int | Refusal:
    """Indices per run of the Lambda, so that its output holds at most
    LAMBDA_PROOF_CHUNK_VALUES values (``_probe_batch`` lays them out)."""
    tail = list(shape[1:])
    fixed = 1
    for d in tail:
        fixed *= d if d is not None else 1
    unit = fixed * depth  # output values of one input row (fixed shape) or one index
    if unit > LAMBDA_PROOF_CHUNK_VALUES:
        return Refusal(
            f"one input row gives {unit} output values, over the {LAMBDA_PROOF_CHUNK_VALUES} "
            "that graphkit runs at once to prove it (graphkit.limits.LAMBDA_PROOF_CHUNK_VALUES)",
            severity="kept",
        )
    rows = LAMBDA_PROOF_CHUNK_VALUES // unit
    return rows if None in tail else rows * fixed


def _run_on(layer, order, shape, depth, dtype):
    """The hot index of each of ``order`` (see ``_hot_index``), run in bounded chunks."""
    import keras
    import numpy as np

    size = _chunk_size(shape, depth)
    if isinstance(size, Refusal):
        return size
    hots = []
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        batch = _probe_batch(chunk, shape)
        if dtype.startswith(("uint", "int", "float")):
            batch = batch.astype(dtype)
        try:
            out = keras.ops.convert_to_numpy(layer(batch))
        except Exception as exc:
            from graphkit.errors import one_line

            return Refusal(f"running it on indices failed: {one_line(exc)}", severity="kept")
        expected = tuple(batch.shape) + (depth,)
        if tuple(out.shape) != expected:
            return Refusal(
                f"it gives shape {tuple(out.shape)} for input {tuple(batch.shape)}, not the "
                f"one-hot shape {expected} its declared output shape promises",
                severity="kept",
            )
        hots.append(_hot_index(out.reshape(-1, depth)[: len(chunk)]))
        del out
    return np.concatenate(hots)


def _prove(layer, shape, depth):
    import keras
    import numpy as np

    if depth > LAMBDA_PROOF_MAX_DEPTH:
        return Refusal(
            f"its depth {depth} is over the {LAMBDA_PROOF_MAX_DEPTH} that graphkit proves by "
            "running it (graphkit.limits.LAMBDA_PROOF_MAX_DEPTH); --onehot-lambda "
            f"{layer.name} adopts it on your word",
            severity="kept",
        )
    count = depth + BEYOND
    dtype = keras.backend.standardize_dtype(layer.input.dtype)
    observed = []
    for order in (np.arange(count), np.arange(count)[::-1]):
        hot = _run_on(layer, order, shape, depth, dtype)
        if isinstance(hot, Refusal):
            return hot
        observed.append(hot[np.argsort(order)] if order[0] != 0 else hot)
    seen_a, seen_b = observed
    indices = np.arange(count)

    def rows_for(index):
        return np.where(index < depth, index, -1)

    best = None
    for wrap in WRAPS:
        expected = rows_for(indices % wrap if wrap else indices)
        # TensorFlow casts floats past the range of a narrow integer type by saturating in
        # vectorised code and wrapping in scalar code: either row may come out
        saturated = rows_for(np.minimum(indices, wrap - 1)) if wrap else expected
        ok = ((seen_a == expected) | (seen_a == saturated)) & (
            (seen_b == expected) | (seen_b == saturated)
        )
        if not np.all(ok[:depth]):  # the vocabulary decides; past it, the best fit
            continue
        score = int(np.sum(ok[depth:]))
        exact = (seen_a == expected) & (seen_b == expected)
        if best is None or score > best[0]:
            best = (score, wrap, np.flatnonzero(~exact[:depth]))
    if best is not None:
        return best[1], best[2]
    moved = np.flatnonzero(seen_a[:depth] != seen_b[:depth])
    if len(moved):
        return Refusal(
            f"the row it gives for index {int(moved[0])} depends on where the index is in the "
            "batch (not a one-hot of each index)",
            severity="kept",
        )
    bad = np.flatnonzero(seen_a[:depth] < 0)
    if len(bad):
        return Refusal(f"index {int(bad[0])} does not give a one-hot row", severity="kept")
    return Refusal(
        "its rows are one-hot but not row i (nor i % 256) for index i: graphkit's OneHot cannot "
        "express that map",
        severity="kept",
    )
