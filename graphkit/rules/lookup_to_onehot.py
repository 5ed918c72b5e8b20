"""Rule: ``IntegerLookup``/``StringLookup(output_mode="one_hot")`` -> the same lookup in
``output_mode="int"`` + graphkit's ``OneHot``.

A normalising rule, like ``categoryencoding_to_onehot``: the ``OneHot`` it leaves folds
with a following Dense into an Embedding (``--to embedding``) or stays as graphkit's
serializable one-hot (``--to onehot-dense``).

What Keras 3.15's one-hot lookup computes (``keras/src/layers/preprocessing/index_lookup.py``):
the token's index in ``[oov_0 .. oov_{n-1}, token_0 .. token_{m-1}]`` (OOV tokens go to
``token % n`` with ``n = num_oov_indices > 1``, or hashed with ``oov_method="farmhash"``), one-hot
encoded with depth ``n + m`` (``max_tokens`` with ``pad_to_max_tokens``). The mask token has no
column: it maps to int64's max, and its one-hot row is all zeros. A last input axis of size 1 is
dropped first ((batch, 1) -> (batch, depth)).

The same layer in ``output_mode="int"`` gives exactly these indices without a mask token. With a
mask token, int mode puts the mask at index 0 and shifts everything else by one: the rewrite
then uses ``OneHot(depth + 1)`` and gives each Dense that reads the one-hot a zero kernel row 0,
so the mask still adds nothing. Either way the lookup table is copied key for key (and checked),
and the vocabulary is written into the new layer's config, so it survives save/load in safe mode.

Kept, with the reason: ``multi_hot``/``count``/``tf_idf`` (several tokens per row; ``count``
folds into an Embedding with ``count_to_embedding``), ``sparse=True``, a variable last input
axis (Keras drops it only when a batch has length 1, eagerly, and fails when traced), and a
mask token whose one-hot feeds anything but a Dense.
"""

from __future__ import annotations

from graphkit.rules.base import Chain, Match, Refusal
from graphkit.rules.categoryencoding_to_onehot import not_onehot

NAME = "lookup_to_onehot"


def is_lookup(layer) -> bool:
    import keras

    return isinstance(layer, (keras.layers.IntegerLookup, keras.layers.StringLookup))


def lookup_check(layer, graph) -> Refusal | tuple:
    """What every rewrite of an encoding lookup needs: a plain, dense, non-inverted lookup
    with a vocabulary and one known input shape. Returns the input shape, or why not."""
    import keras

    if type(layer) not in (keras.layers.IntegerLookup, keras.layers.StringLookup):
        return Refusal(f"{type(layer).__name__} subclasses a Keras lookup layer", severity="kept")
    if layer.invert:
        return Refusal("invert=True maps indices back to tokens; not rewritten", severity="kept")
    if layer.sparse:
        return Refusal("sparse=True gives a sparse tensor; not rewritten", severity="kept")
    if int(layer.lookup_table.size()) == 0:
        return Refusal("its vocabulary is empty (never set or adapted)", severity="kept")
    shapes = {s.input_shape for s in graph.call_sites(layer)}
    if len(shapes) != 1 or None in shapes:
        return Refusal("its input shape is unknown or differs between calls", severity="kept")
    (shape,) = shapes
    return shape


def depth_of(layer, shape) -> int:
    """The width of the lookup's encoded output (``max_tokens`` when padded)."""
    return int(layer.compute_output_shape(shape)[-1])


def mask_shift(layer) -> int:
    """1 if int mode puts a mask token at index 0 (and every other index one further)."""
    return 1 if layer.mask_token is not None else 0


def int_lookup(layer, name: str):
    """The same lookup in ``output_mode="int"``: vocabulary, OOV and mask config, hashing.

    Every index is the encoded column plus ``mask_shift(layer)``. The vocabulary is passed
    with its special tokens in front (mask, then OOV), which Keras recognises and strips, so
    a token equal to the OOV token cannot be mistaken for one. Returns the layer, or a
    Refusal if its table does not match the original key for key.
    """
    import numpy as np

    string = layer.vocabulary_dtype == "string"
    tokens = [
        str(t) if string else int(t) for t in layer.get_vocabulary(include_special_tokens=False)
    ]
    special = ([layer.mask_token] if layer.mask_token is not None else []) + [
        layer.oov_token
    ] * layer.num_oov_indices
    config = layer.get_config()
    config.update(
        name=name,
        output_mode="int",
        sparse=False,
        pad_to_max_tokens=False,
        max_tokens=None,  # int mode counts the mask too: a cap could refuse the same vocabulary
        vocabulary=special + tokens,
        vocabulary_size=None,
        idf_weights=None,
    )
    new = type(layer).from_config(config)

    def table(lookup, shift):
        keys, values = lookup.lookup_table.export()
        return dict(zip(keys.numpy().tolist(), (np.asarray(values) - shift).tolist()))

    if table(new, mask_shift(layer)) != table(layer, 0):
        return Refusal("could not rebuild its lookup table exactly in output_mode='int'", "kept")
    return new


def dense_consumers(layer, graph) -> list | Refusal:
    """The Dense-like layers reading ``layer``'s output, each applied to it alone, built and
    plain (their kernel gets a row)."""
    from graphkit.rules.onehot_to_embedding import _inner_dense
    from graphkit.rules.onehot_to_embedding import dense_consumers as readers

    consumers = readers(
        layer,
        graph,
        why_not=lambda c: f"its output feeds {c.name!r} ({type(c).__name__}), not a Dense",
        why_shared=lambda c: (
            f"{c.name!r} is also applied to other tensors; its kernel cannot change"
        ),
    )
    if isinstance(consumers, Refusal):
        return consumers
    for consumer in consumers:
        dense = _inner_dense(consumer)
        if not dense.built:
            return Refusal(f"{consumer.name!r} is not built", severity="kept")
        if getattr(dense, "quantization_mode", None):
            return Refusal(f"{consumer.name!r} is quantized ({dense.quantization_mode})", "kept")
        if getattr(dense, "lora_enabled", False):
            return Refusal(f"{consumer.name!r} has LoRA enabled", severity="kept")
    return consumers


def _padded(consumer, ctx):
    """``consumer`` (a Dense or TimeDistributed(Dense)) with a zero kernel row 0 added."""
    import keras
    import numpy as np

    from graphkit.rules.onehot_to_embedding import _inner_dense

    dense = _inner_dense(consumer)
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    config = dense.get_config()
    if dense is not consumer:
        ctx.release(dense.name)
    ctx.release(consumer.name)
    config["name"] = ctx.unique_name(dense.name)
    new_dense = keras.layers.Dense.from_config(config)
    new_dense.build((None, kernel.shape[0] + 1))
    new_dense.kernel.assign(np.concatenate([np.zeros_like(kernel[:1]), kernel]))
    if dense.use_bias:
        new_dense.bias.assign(keras.ops.convert_to_numpy(dense.bias))
    new_dense.trainable = dense.trainable
    if dense is consumer:
        return new_dense
    wrapper = type(consumer)(
        new_dense,
        name=ctx.unique_name(consumer.name),
        activity_regularizer=consumer.activity_regularizer,
    )
    wrapper.trainable = consumer.trainable
    return wrapper


class LookupToOneHot:
    name = NAME
    summary = (
        "IntegerLookup/StringLookup(output_mode='one_hot') -> the lookup in 'int' mode + "
        "graphkit's OneHot (then folds like it)"
    )
    targets = ("*",)
    phase = "normalise"
    source = None
    anchor_label = "one-hot lookup"
    optional = True
    exact = True
    inspect = {
        "label": "Lookup",
        "role": "lookup",
        "yes": "normalised",
        "becomes": "-> int lookup + OneHot",
        "no": "kept",
    }

    def anchors(self, layer) -> bool:
        # int-mode lookups give indices already: nothing to rewrite (and they are what
        # this rule leaves behind)
        return is_lookup(layer) and layer.output_mode != "int"

    def index_range(self, layer) -> tuple[int, bool] | None:
        return None  # lookups read raw values, not indices: see ``lookup_values``

    def lookup_values(self, layer) -> tuple | None:
        """The vocabulary of an IntegerLookup/StringLookup (any mode but ``invert``), or
        ``()`` for Hashing: raw values, each mapped to an index; values outside it are
        valid too (the out-of-vocabulary index, or an error where there is none)."""
        import keras

        if isinstance(layer, keras.layers.Hashing):
            return ()
        if not is_lookup(layer) or layer.invert:
            return None
        try:
            known = list(layer.get_vocabulary(include_special_tokens=False))
        except Exception:
            return ()
        if isinstance(layer, keras.layers.IntegerLookup):
            return tuple(int(t) for t in known)
        return tuple(t.decode() if isinstance(t, bytes) else str(t) for t in known)

    def covers(self, layer, graph) -> list[str]:
        if self.check(layer, graph) is not None or layer.mask_token is None:
            return []
        return [c.name for c in dense_consumers(layer, graph)]

    def check(self, layer, graph) -> Refusal | None:
        if layer.output_mode != "one_hot":
            return not_onehot(layer.output_mode)
        shape = lookup_check(layer, graph)
        if isinstance(shape, Refusal):
            return shape
        if len(shape) > 1 and shape[-1] is None:
            return Refusal(
                "its last input axis is variable: Keras drops it when a batch has length 1 "
                "(eagerly; traced calls fail), which no fixed rewrite reproduces",
                severity="kept",
            )
        if len(shape) > 1 and shape[-1] == 1 and sum(d is None for d in shape[1:-1]) > 1:
            return Refusal(
                "a (..., 1) input with several variable axes: the squeeze needs static axes",
                severity="kept",
            )
        if layer.mask_token is not None:
            consumers = dense_consumers(layer, graph)
            if isinstance(consumers, Refusal):
                return Refusal(
                    f"mask_token={layer.mask_token!r} has an all-zero one-hot, which int mode "
                    f"makes index 0: only a Dense can absorb that row, but {consumers.reason}",
                    severity="kept",
                )
        return None

    def rewrite(self, layer, graph, ctx) -> Match | Refusal:
        import keras

        from graphkit.layers import OneHot

        (shape,) = {s.input_shape for s in graph.call_sites(layer)}
        shift = mask_shift(layer)
        depth = depth_of(layer, shape) + shift
        keep_name = graph.is_output(layer)  # outputs are matched by name: the OneHot keeps it
        ctx.release(layer.name)
        lookup = int_lookup(
            layer, ctx.unique_name(f"{layer.name}_int" if keep_name else layer.name)
        )
        if isinstance(lookup, Refusal):
            return lookup
        layers = [lookup]
        if len(shape) > 1 and shape[-1] == 1:  # Keras drops a last axis of size 1 first
            target = tuple(-1 if d is None else d for d in shape[1:-1])
            layers.append(
                keras.layers.Reshape(target, name=ctx.unique_name(f"{layer.name}_squeeze"))
            )
        # The encoded output is declared float (floatx) but is int64 when run; 0 and 1 are
        # exact in both, and a Dense casts either to its compute dtype.
        layers.append(
            OneHot(
                depth,
                name=ctx.unique_name(layer.name if keep_name else f"{layer.name}_onehot"),
                dtype=keras.config.floatx(),
            )
        )
        replacements = {id(layer): Chain(layers)}
        replaced = [layer.name]
        if shift:
            for consumer in dense_consumers(layer, graph):
                replacements[id(consumer)] = Chain([_padded(consumer, ctx)])
                replaced.append(consumer.name)
                ctx.note(
                    f"kernel of {consumer.name!r} gets a zero row 0 for mask_token="
                    f"{layer.mask_token!r} (index 0 in output_mode='int')"
                )
        return Match(
            replacements=replacements,
            new_layer_names=[x.name for x in layers]
            + [r.layers[0].name for k, r in replacements.items() if k != id(layer)],
            replaced_names=replaced,
            status="normalised",
        )
