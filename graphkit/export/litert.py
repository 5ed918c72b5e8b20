"""The LiteRT writer: Keras model -> ``.tflite`` with TensorFlow's TFLite converter, verified
in the LiteRT runtime (``ai-edge-litert``) against the eager Keras call.

``export_litert`` composes the shared stages (``graphkit.export.stages``) around this
module's own: a frozen trace and the converter. Keras' own ``model.export(format="litert")``
goes through a SavedModel on disk; graphkit traces the model with its weights bound as
constants (``stateless_call``) and converts that concrete function directly. The Keras model
itself must not be given to the converter as the trackable object: its variables then stay
resource variables that the file never initialises (the outputs are NaN).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from graphkit.errors import GraphkitError, one_line
from graphkit.export.report import ExportReport
from graphkit.export.stages import Check, Stages, load_to, repair, verify_against_keras, write_file

VERIFY_SAMPLES = 64
# a FlatBuffer addresses at most 2 GiB (32-bit offsets): larger weights cannot be written
FLATBUFFER_LIMIT = 2**31
TARGETS = ("gpu-delegate",)
INDEX_DTYPES = ("int32",)


def default_litert_path(source: str | os.PathLike) -> Path:
    return Path(source).with_suffix(".tflite")


def check_litert_options(
    model: str | os.PathLike | None,
    output: str | os.PathLike | None,
    *,
    force: bool = False,
    samples: int = VERIFY_SAMPLES,
    seq_len: int | None = None,
    target: str | None = None,
    index_dtype: str | None = None,
    verify: bool = True,
) -> Path | None:
    """The output path (``model``'s ``.tflite`` beside it where ``output`` is None), checked,
    and the options' values. Cheap: the CLI runs it before importing TensorFlow."""
    from graphkit.io import check_output_path
    from graphkit.verification import check_options

    check_options(samples=samples, seq_len=seq_len)
    if verify:  # the check runs in LiteRT: its runtime must be there before a slow export
        from graphkit.backends.litert_backend import check_runtime

        check_runtime()
    if target is not None and target not in TARGETS:
        raise GraphkitError(
            f"target={target!r}: a LiteRT export fits {', '.join(TARGETS)}",
            cli=f"--target {target}: with --litert, the target is {', '.join(TARGETS)} "
            "(nnapi and coreml are ONNX targets: --onnx)",
        )
    if index_dtype is not None and index_dtype not in INDEX_DTYPES:
        raise GraphkitError(
            f"index_dtype={index_dtype!r}: the index type can be made int32",
            cli=f"--index-dtype {index_dtype}: the index type can be made int32",
        )
    if output is None and model is None:
        return None
    path = Path(output) if output is not None else default_litert_path(model)
    if path.suffix.lower() != ".tflite":
        raise GraphkitError(f"{path}: a LiteRT output must end in .tflite")
    return check_output_path(path, force=force)


def export_litert(
    model,
    output: str | os.PathLike | None = None,
    *,
    verify: bool = True,
    force: bool = False,
    samples: int = VERIFY_SAMPLES,
    seq_len: int | None = None,
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
    inputs=None,
    progress=None,
    index_dtype: str | None = None,
    fixed_shapes=None,
    target: str | None = None,
    ranges=None,
) -> ExportReport:
    """Export ``model`` (Keras model or .keras/.h5 path) to a LiteRT flatbuffer at ``output``.

    The repairs of the ONNX export apply (Keras' TimeDistributed is traced as the eager call
    computes it); ``fixed_shapes`` (``{"tokens": (1, 16)}`` or ``"1x16"``) fixes input shapes
    in the signature; ``index_dtype="int32"`` makes int64 integer inputs int32 in the
    signature (cast back inside, except for the GPU target). The file has one signature,
    ``serving_default``, keyed by the Keras input and output names. Unless ``verify=False`` it
    is run in the LiteRT runtime against the eager Keras call with verify's rules (coverage
    of every table row, weights, earned tolerance); a file that differs is never written
    (NotEquivalentError). ``target="gpu-delegate"`` (needs ``fixed_shapes`` for every input,
    implies ``index_dtype="int32"``) traces the lookups in the forms the GPU delegate's rules
    take (``graphkit.export.litert_gpu``; inputs must be indices in ``[0, vocab)``) and adds
    the delegate's verdict (``report.coverage``).
    Weights over 2 GiB are refused before conversion (the FlatBuffer limit).
    """
    from graphkit.onnx_passes import fix_shapes
    from graphkit.verification.inputs import parse_ranges

    if fixed_shapes:
        fixed_shapes = fix_shapes.normalise_shapes(fixed_shapes)
    if target == "gpu-delegate" and index_dtype is None:
        index_dtype = "int32"  # implied: the delegate's rules take int32 indices only
    parse_ranges(ranges)
    path_given = isinstance(model, (str, os.PathLike))
    check_litert_options(
        model if path_given else None,
        output,
        force=force,
        samples=samples,
        seq_len=seq_len,
        target=target,
        index_dtype=index_dtype,
        verify=verify,
    )
    stages = Stages(progress)
    model, source, output = load_to(
        model,
        output,
        default_litert_path,
        stages,
        force=force,
        unsafe=unsafe,
        imports=imports,
        onehot_lambdas=onehot_lambdas,
    )

    start = time.perf_counter()
    loaded = repair(model, source, stages, fixed_shapes=fixed_shapes)
    if target == "gpu-delegate":  # the SHAPE arithmetic of a dynamic dimension is refused
        from graphkit.onnx_targets import require_static_inputs

        why = "(the GPU delegate's rules take static shapes)"
        require_static_inputs(target, why, loaded.input_shapes, fixed_shapes or {})
    with stages("trace", "tracing the model with its weights as constants"):
        from graphkit import tf_graph_fixes

        tf_graph_fixes.check_preprocessing(loaded.exported, "LiteRT")
        check_size(loaded.exported)
        gpu = target == "gpu-delegate"
        function, signature = frozen_function(
            loaded.exported, fixed_shapes, index_dtype, cast_back=not gpu
        )
        _trace(function, loaded.exported, gpu=gpu)
    with stages("convert", "converting with TensorFlow's TFLite converter"):
        data = convert(function, loaded.exported, signature)
    from graphkit.export.litert_inspect import read_ops

    ops = read_ops(data)
    report = ExportReport(
        loaded.source,
        None,
        None,
        len(ops),
        dict(sorted(Counter(ops).items())),
        time.perf_counter() - start,
        inputs=[name for name, _, _ in signature],
        outputs=_output_names(loaded.exported),
        repairs=loaded.repairs,
        format_name="litert",
        stages=stages.seconds,
        target=target,
    )
    if index_dtype or fixed_shapes:
        report.deploy = {
            "index_dtype": index_dtype,
            "fixed_shapes": {k: list(v) for k, v in (fixed_shapes or {}).items()},
            "inputs": {
                name: {"dtype": dtype, "shape": list(shape)} for name, shape, dtype in signature
            },
        }
    if target == "gpu-delegate":
        from graphkit.export.litert_gpu import NOTE

        report.notes.append(NOTE)
        if "EMBEDDING_LOOKUP" in report.op_counts and "ONE_HOT" not in report.op_counts:
            report.notes.append(
                "the TFLite converter fused each int32 ONE_HOT -> FULLY_CONNECTED into one "
                "EMBEDDING_LOOKUP (the same rows, read instead of multiplied)"
            )
    check = Check(samples, seq_len, inputs, stages.say, ranges) if verify else None

    def checked(path: Path) -> None:
        if check is not None:  # read back in LiteRT: a file the runtime refuses fails here
            from graphkit.backends.litert_backend import LiteRTBackend

            candidate = LiteRTBackend(path)
            verify_against_keras(
                report, loaded.model, candidate, check, stages, label="LiteRT export"
            )
        if target == "gpu-delegate":
            from graphkit.export.litert_inspect import gpu_delegate

            with stages("target", "checking the GPU delegate's op support"):
                report.coverage = gpu_delegate(data)

    def write(path: Path) -> None:
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise GraphkitError(f"{path.name}: cannot write it ({exc.strerror or exc})") from exc

    report.size_bytes = write_file(
        output,
        force=force,
        write=write,
        check=checked,
        stages=stages,
        prefix="graphkit-litert-",
        name="model.tflite",
    )
    if output is not None:
        report.output = str(output)
        if report.verify is not None:  # it ran on the temporary file that became ``output``
            report.verify.candidate = str(output)
    return report


def _trace(function, model, *, gpu: bool) -> None:
    """Trace ``function`` now (the "trace" stage), lookups in the GPU delegate's forms with
    ``gpu``; a model TensorFlow cannot trace is one GraphkitError."""
    from contextlib import nullcontext

    from graphkit._keras_api import integer_inputs_as_given
    from graphkit.export.litert_gpu import gpu_lookups

    try:
        # gpu: int32 indices stay int32 from the signature to the lookups (no CAST pair)
        with (
            gpu_lookups() if gpu else nullcontext(),
            integer_inputs_as_given() if gpu else nullcontext(),
        ):
            function.get_concrete_function()
    except GraphkitError:
        raise
    except Exception as exc:
        raise GraphkitError(
            f"TensorFlow cannot trace model {model.name!r}: {one_line(exc, with_type=False)}"
        ) from exc


def check_size(model) -> int:
    """The weights' bytes; 2 GiB or more is refused now (a FlatBuffer cannot hold it)."""
    from graphkit.onnx_weights import nbytes

    total = sum(nbytes(v) for v in model.variables)
    if total >= FLATBUFFER_LIMIT:
        raise GraphkitError(
            f"model {model.name!r} has {total:,} bytes of weights: a LiteRT (.tflite) file "
            f"holds at most {FLATBUFFER_LIMIT:,} (a FlatBuffer's 32-bit offsets); export it to "
            "ONNX with external data instead"
        )
    return total


def frozen_function(
    model, fixed_shapes=None, index_dtype: str | None = None, *, cast_back: bool = True
):
    """A ``tf.function`` over the model's inputs only, its weights bound as constants
    (``stateless_call``), that returns ``{output name: tensor}``: the converter freezes
    captured constants, and the signature's keys are the Keras names. The model is traced
    inside it with the signature's own shapes, so that fixed shapes reach every layer (a
    recurrent layer's loop then has static shapes). Returns ``(function, [(name, shape,
    dtype)])``."""
    import keras
    import tensorflow as tf

    from graphkit.backends.keras_backend import model_feed

    if not getattr(model, "inputs", None):
        raise GraphkitError(
            f"model {model.name!r} has no defined inputs; build it on an Input first"
        )
    trainable = [tf.constant(keras.ops.convert_to_numpy(v)) for v in model.trainable_variables]
    frozen_values = [
        tf.constant(keras.ops.convert_to_numpy(v)) for v in model.non_trainable_variables
    ]
    names = _output_names(model)
    fixed = fixed_shapes or {}
    dtypes = [tf.as_dtype(t.dtype) for t in model.inputs]
    outer = []
    for t, dtype in zip(model.inputs, dtypes):
        shape = tuple(fixed.get(t.name, tuple(t.shape)))
        if index_dtype == "int32" and dtype == tf.int64:
            dtype = tf.int32
        outer.append(tf.TensorSpec(shape, dtype, name=t.name))

    @tf.function(input_signature=outer, autograph=False)
    def frozen(*xs):
        if cast_back:  # else int32 indices go in as they are (see ``_trace``'s gpu)
            xs = [tf.cast(x, d) if x.dtype != d else x for x, d in zip(xs, dtypes)]
        out, _ = model.stateless_call(
            trainable, frozen_values, model_feed(model, list(xs)), training=False
        )
        return dict(zip(names, keras.tree.flatten(out)))

    signature = [
        (s.name, [None if d is None else int(d) for d in s.shape], s.dtype.name) for s in outer
    ]
    return frozen, signature


def convert(function, model, signature=()) -> bytes:
    """The TFLite converter over the frozen function, builtin ops only (what every LiteRT
    runtime has; TensorFlow ops need the Flex delegate, which is not a mobile default).
    ``signature``: the inputs' ``(name, shape, dtype)``, for the hint of a refusal."""
    import tensorflow as tf

    from graphkit._tf import _stderr_fd_silenced

    holder = tf.Module()
    holder.serve = function  # a signature needs a trackable holder; no variables in it
    try:
        with _stderr_fd_silenced():
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [function.get_concrete_function()], holder
            )
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            return converter.convert()
    except Exception as exc:
        raise _refusal(exc, model, signature) from exc


def _refusal(exc: Exception, model, signature) -> GraphkitError:
    """The converter's error as one line, with what to do where graphkit knows it."""
    errors = _converter_errors(exc)
    ops = _refused_ops(errors)
    what = (
        f"ops that are not TFLite builtins: {', '.join(ops)}"
        if ops
        else (errors[0] if errors else one_line(exc, with_type=False))
    )
    message = f"the TFLite converter cannot convert model {model.name!r}: {what}"
    text = " ".join(errors)
    if "tf.GatherV2" in ops:
        return GraphkitError(
            f"{message}; TFLite's builtin GATHER takes no float16 table (a mixed-precision "
            "Embedding): export the model in float32, or to ONNX"
        )
    if "TensorList" in text:  # a recurrent layer's loop over a dynamic shape
        hint = "a recurrent layer's loop needs static shapes in LiteRT: fix the inputs' shapes"
        return GraphkitError(
            f"{message}; {hint} (fixed_shapes=)",
            cli=f"{message}; {hint} (--fixed-shape NAME=DIMS)",
        )
    quantized = sorted(
        {
            f"{layer.name!r} ({layer.quantization_mode})"
            for layer in model._flatten_layers(include_self=False)
            if getattr(layer, "quantization_mode", None)
        }
    )
    if quantized:
        return GraphkitError(
            f"{message}; the model has Keras-quantized layers ({', '.join(quantized[:3])}"
            f"{', ...' if len(quantized) > 3 else ''}), whose integer kernels the TFLite "
            "converter does not take: export the float model (TFLite quantizes on its own, "
            "converter.optimizations), or export this one to ONNX"
        )
    dynamic = [name for name, shape, _ in signature if None in shape[1:]]
    if ops and dynamic:
        hint = "fix their shapes ({}) so that the converter folds what computes on shapes"
        tail = f"(positions, masks), or export to ONNX (inputs with dynamic axes: {', '.join(dynamic)})"
        return GraphkitError(
            f"{message}; {hint.format('fixed_shapes=')} {tail}",
            cli=f"{message}; {hint.format('--fixed-shape NAME=DIMS')} {tail}",
        )
    if ops:
        return GraphkitError(f"{message}; export to ONNX, which has them")
    return GraphkitError(message)


def _converter_errors(exc: Exception) -> list[str]:
    """The converter's ``error:`` lines, each once, without their MLIR source locations (they
    name the Python file that ran, not the model)."""
    import re

    found = [m.strip().rstrip(".") for m in re.findall(r"error: (.*)", str(exc))]
    return list(dict.fromkeys(found))


def _refused_ops(errors: list[str]) -> list[str]:
    """The TensorFlow ops the converter named as neither builtin, custom nor flex."""
    import re

    ops = []
    for line in errors:
        found = re.search(r"'([\w.]+)' op is neither a custom op nor a flex op", line)
        if found:
            ops.append(found.group(1))
    return list(dict.fromkeys(ops))


def _output_names(model) -> list[str]:
    from graphkit.inspect import output_names

    return output_names(model)
