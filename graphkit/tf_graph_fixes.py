"""TensorFlow ops that KerasHub models trace to and tf2onnx 1.17 leaves unconverted, given ONNX forms.

tf2onnx copies a TensorFlow op it has no handler for into the ONNX graph unchanged, which the
checker then refuses ("No Op registered for Erfc"). The handlers here are passed to
``tf2onnx.convert.from_function(custom_op_handlers=...)`` for one conversion at a time:
tf2onnx's own extension point, applied while it maps ops, so its optimizers and shape and
dtype bookkeeping see plain ONNX ops. (A GraphDef rewrite before tf2onnx would mean
freezing the function ourselves instead of ``from_function``; an ONNX pass afterwards would
meet the op only once tf2onnx has given up on its types.)

- ``Erfc`` (exact GELU, ``0.5 * x * erfc(-x / sqrt(2))``): ``1 - Erf(x)``.
- ``Complex`` / ``FFT2D`` / ``Real`` / ``Imag`` (FNet's Fourier mixing): a complex tensor is
  a float tensor with a trailing axis of 2 (real, imaginary), ONNX's ``DFT`` layout; FFT2D
  is a DFT on each of the last two axes (opset 17+).

``unexportable`` names what is still left after conversion (the layer and the op), and
``check_preprocessing`` refuses string preprocessing layers before any tracing.
"""

from __future__ import annotations

import re

import numpy as np

from graphkit.errors import GraphkitError

DFT_OPSET = 17  # ONNX's DFT
STRING_LAYERS = ("TextVectorization", "StringLookup")  # string tables and regexes: no ONNX form


def custom_op_handlers(opset: int) -> dict:
    """``{tf op: (handler, [])}`` for ``tf2onnx.convert.from_function`` at ``opset``."""
    handlers = {"Erfc": (_erfc, [])}
    if opset >= DFT_OPSET:  # below it, FFT2D stays and ``unexportable`` names it
        for op, fn in (("Complex", _complex), ("FFT2D", _fft2d), ("Real", _part), ("Imag", _part)):
            handlers[op] = (fn, [])
    return handlers


def _np_dtype(ctx, name: str):
    from tf2onnx import utils

    return utils.map_onnx_to_numpy_type(ctx.get_dtype(name))


def _erfc(ctx, node, name, args) -> None:
    """``erfc(x) = 1 - erf(x)``: the node becomes the Sub, so its output name stays."""
    from tf2onnx import utils

    x = node.input[0]
    dtype = ctx.get_dtype(x)
    erf = ctx.make_node(
        "Erf",
        [x],
        name=utils.make_name(f"{node.name}/Erf"),
        shapes=[ctx.get_shape(x)],
        dtypes=[dtype],
    )
    one = ctx.make_const(utils.make_name(f"{node.name}/one"), np.array(1, _np_dtype(ctx, x)))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def _complex(ctx, node, name, args) -> None:
    """``Complex(re, im)`` -> ``Concat(re[..., None], im[..., None], axis=-1)``."""
    from tf2onnx import utils
    from tf2onnx.graph_builder import GraphBuilder

    parts = []
    for x in node.input:
        parts.append(GraphBuilder(ctx).make_unsqueeze({"data": x, "axes": [-1]}))
    dtype = ctx.get_dtype(node.input[0])
    shape = ctx.get_shape(node.output[0])
    out = node.output[0]
    ctx.remove_node(node.name)
    ctx.make_node(
        "Concat",
        parts,
        attr={"axis": -1},
        name=utils.make_name(f"{node.name}/Concat"),
        outputs=[out],
        shapes=[None if shape is None else [*shape, 2]],
        dtypes=[dtype],
    )


def _fft2d(ctx, node, name, args) -> None:
    """``FFT2D(z)`` on the last two axes -> two ``DFT`` nodes on the (re, im) layout."""
    from tf2onnx import utils

    out = node.output[0]
    shape = ctx.get_shape(out)
    rank = ctx.get_rank(out)  # TensorFlow's rank, without the (re, im) axis
    if rank is None or rank < 2:
        raise ValueError(f"FFT2D {node.name}: unknown rank")
    src = node.input[0]
    dtype = ctx.get_dtype(src)
    ctx.remove_node(node.name)
    layout_shape = None if shape is None else [*shape, 2]
    for k, axis in enumerate((rank - 1, rank - 2)):
        if ctx.opset >= 20:  # axis became an input
            axis_const = ctx.make_const(
                utils.make_name(f"{node.name}/axis"), np.array(axis, np.int64)
            )
            inputs, attr = [src, "", axis_const.output[0]], {}
        else:
            inputs, attr = [src], {"axis": axis}
        dft = ctx.make_node(
            "DFT",
            inputs,
            attr=attr,
            name=utils.make_name(f"{node.name}/DFT"),
            outputs=[out] if k == 1 else None,
            shapes=[layout_shape],
            dtypes=[dtype],
        )
        src = dft.output[0]


def _part(ctx, node, name, args) -> None:
    """``Real(z)`` / ``Imag(z)`` -> ``Gather(z, 0 or 1, axis=-1)``."""
    from onnx import TensorProto
    from tf2onnx import utils

    index = 0 if node.type == "Real" else 1
    src = node.input[0]
    if ctx.get_dtype(src) in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        raise ValueError(f"{node.type} {node.name}: its input was not converted to (re, im)")
    i = ctx.make_const(utils.make_name(f"{node.name}/index"), np.array(index, np.int64))
    node.type = "Gather"
    ctx.replace_inputs(node, [src, i.output[0]])
    node.set_attr("axis", -1)
    for key in ("Tout", "T"):
        if key in node.attr:
            del node.attr[key]


# layers that look values up in a TensorFlow hash table: TFLite's builtin ops hold none
TABLE_LAYERS = {"IntegerLookup", "StringLookup"}


def check_preprocessing(model, fmt: str = "ONNX") -> None:
    """Refuse string preprocessing layers (regexes, string tables): ``fmt`` (ONNX, LiteRT)
    has no form for them; for LiteRT, hash-table lookups too."""
    refused = set(STRING_LAYERS) | (TABLE_LAYERS if fmt == "LiteRT" else set())
    for layer in model._flatten_layers(include_self=False, recursive=True):
        name = type(layer).__name__
        if name in refused:
            what = "string preprocessing" if name in STRING_LAYERS else "a hash-table lookup"
            raise GraphkitError(
                f"layer {layer.name!r} ({name}) is {what}, which graphkit cannot export to "
                f"{fmt}: export the model after its preprocessing (the one that takes its "
                "token ids)"
            )
    for t in getattr(model, "inputs", None) or []:
        if "string" in str(t.dtype):
            raise GraphkitError(
                f"input {t.name!r} holds strings, which graphkit cannot export to {fmt}: "
                "export the model after its preprocessing (the one that takes token ids)"
            )


def unexportable(proto, model) -> str | None:
    """The first node that is no ONNX op (tf2onnx had no handler), as a one-line reason."""
    import onnx

    from graphkit.onnx_passes.graph import subgraphs

    opsets = {o.domain: o.version for o in proto.opset_import}

    def walk(graph):
        for node in graph.node:
            yield node
            for sub in subgraphs(node):
                yield from walk(sub)

    for node in walk(proto.graph):
        domain = node.domain if node.domain != "ai.onnx" else ""
        version = opsets.get(domain)
        if version is None:
            continue  # a custom domain the model declares: the checker decides
        try:
            onnx.defs.get_schema(node.op_type, version, domain)
        except Exception:
            where = _layer_of(node.name, model)
            hint = (
                f" (ONNX's DFT needs --opset {DFT_OPSET} or higher)"
                if node.op_type in ("FFT2D", "Complex") and version < DFT_OPSET
                else ""
            )
            subject = f"layer {where!r}" if where else f"node {node.name!r}"
            return f"{subject} uses {node.op_type}, which graphkit cannot export to ONNX yet{hint}"
    return None


def _layer_of(node_name: str, model) -> str | None:
    """The deepest Keras layer named in a traced node's name scope (``f_net_layer_0_1/FFT2D``:
    TensorFlow's scope adds ``_1``), else None."""
    names = {layer.name for layer in model._flatten_layers(include_self=False, recursive=True)}
    found = None
    for part in node_name.split("/")[:-1]:
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in names:
                found = candidate
                break
    return found
