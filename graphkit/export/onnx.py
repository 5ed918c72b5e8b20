"""The ONNX writer: Keras model -> ONNX through tf2onnx, checked, optionally rewritten, verified.

``export_onnx`` composes the shared stages (``graphkit.export.stages``) around this
module's own: trace with tf2onnx, the ONNX passes, the write with external data.

tf2onnx's ``from_keras`` fails on Keras 3 models, so the model is traced through a
``tf.function`` with an input signature (``from_function``), which is also what
Keras' own exporter does. Axes that are None in Keras stay dynamic. graphkit's
TimeDistributed(Dense) is the Dense on the last axis, so the onehot-dense variant
exports as OneHot -> MatMul with no per-step unrolling and no Loop.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import GraphkitError, one_line
from graphkit.export.report import ExportReport
from graphkit.export.stages import (
    Check,
    Stages,
    load_to,
    repair,
    verify_against_keras,
    write_file,
)

DEFAULT_OPSET = 17
VERIFY_SAMPLES = 64


def to_onnx_proto(model, opset: int = DEFAULT_OPSET):
    """Convert a Keras model to an ``onnx.ModelProto`` with its weights inline (see ``trace``)."""
    from graphkit import onnx_weights

    proto, _ = trace(model, opset, onnx_weights.Weights(external=False))
    return proto


def trace(model, opset: int = DEFAULT_OPSET, weights=None):
    """Convert a Keras model to ``(onnx.ModelProto, Weights)`` (nothing written to disk).

    The model is traced with its variables as inputs of the traced function (Keras'
    ``stateless_call``), so no weight enters a TensorFlow GraphDef (limited to 2 GB) and
    tf2onnx sees a small graph. The variables then become initializers straight from their
    arrays, inline or as external data (``weights``, a ``graphkit.onnx_weights.Weights``;
    by default external above ``onnx_weights.THRESHOLD`` bytes).
    """
    import tf2onnx

    from graphkit import onnx_weights, tf_graph_fixes
    from graphkit._tf import _stderr_fd_silenced
    from graphkit.backends.keras_backend import stateless_serving_function
    from graphkit.inspect import output_names

    tf_graph_fixes.check_preprocessing(model)
    serve, specs, variables = stateless_serving_function(model)
    total = sum(onnx_weights.nbytes(v) for v in variables)
    if weights is None:
        weights = onnx_weights.Weights(external=total > onnx_weights.THRESHOLD)
    elif not weights.external and total >= onnx_weights.PROTOBUF_LIMIT:
        raise GraphkitError(
            f"the weights take {total:,} bytes: an ONNX file holds at most 2 GB inline; "
            "drop --no-external-data (they then go to <model>.onnx.data)"
        )
    try:
        with _stderr_fd_silenced():
            captured = _captured_constants(serve, specs)
            proto, _ = tf2onnx.convert.from_function(
                serve,
                input_signature=specs,
                opset=opset,
                custom_op_handlers=tf_graph_fixes.custom_op_handlers(opset),
            )
    except Exception as exc:
        raise GraphkitError(
            f"tf2onnx cannot convert model {model.name!r}: {one_line(exc, with_type=False)}"
        ) from exc
    left = tf_graph_fixes.unexportable(proto, model)
    if left:
        raise GraphkitError(left)
    weights.note_left_out(
        *_variables_to_initializers(proto, specs[len(specs) - len(variables) :], variables, weights)
    )
    _constants_to_initializers(proto, captured)
    weights.drop_unused(proto)
    _rename_outputs(proto, output_names(model))
    proto.producer_name = "graphkit"
    return proto, weights


def _captured_constants(serve, specs) -> dict[str, np.ndarray]:
    """Tensors the traced function captured (``sqrt(hidden_dim)`` computed eagerly), by the
    name of the placeholder that stands for each: tf2onnx makes them graph inputs.
    Resources (variables read by handle) are not among them: tf2onnx freezes those."""
    import tensorflow as tf

    concrete = serve.get_concrete_function(*specs)  # cached: the trace from_function reuses
    placeholders = concrete.inputs[len(concrete.inputs) - len(concrete.captured_inputs) :]
    return {
        p.name: np.asarray(value)
        for p, value in zip(placeholders, concrete.captured_inputs)
        if p.dtype != tf.resource
    }


def _constants_to_initializers(proto, captured: dict[str, np.ndarray]) -> None:
    """The graph inputs that carried captured constants become initializers (like variables)."""
    from onnx import numpy_helper

    graph = proto.graph
    found = [i.name for i in graph.input if i.name in captured]
    if not found:
        return
    keep = [i for i in graph.input if i.name not in captured]
    del graph.input[:]
    graph.input.extend(keep)
    for name in found:
        graph.initializer.append(numpy_helper.from_array(captured[name], name))


def _variables_to_initializers(proto, specs, variables, weights) -> tuple[int, int]:
    """The graph inputs that carried the variables become initializers holding their values.

    A variable that no node reads (a Dropout seed state, a table the outputs do not use) is
    dropped with its input, without reading its values. Returns ``(count, bytes)`` dropped.
    """
    import keras

    from graphkit import onnx_weights
    from graphkit.onnx_passes.graph import node_reads

    graph = proto.graph
    by_name = {spec.name: variable for spec, variable in zip(specs, variables)}
    keep = [i for i in graph.input if i.name not in by_name]
    found = {i.name for i in graph.input} & set(by_name)
    read = {o.name for o in graph.output}.union(*(node_reads(n) for n in graph.node))
    del graph.input[:]
    graph.input.extend(keep)
    count = size = 0
    for name in sorted(found, key=list(by_name).index):
        variable = by_name[name]
        if name not in read:
            count, size = count + 1, size + onnx_weights.nbytes(variable)
            continue
        if weights.wants_external(variable):  # read in slices when written: no host copy now
            graph.initializer.append(weights.initializer(variable, name))
        else:
            graph.initializer.append(
                weights.initializer(keras.ops.convert_to_numpy(variable), name)
            )
    return count, size


def _rename_outputs(proto, names: list[str]) -> None:
    """tf2onnx names outputs Identity:0...; give them the Keras output names.

    Outputs are matched by name in verify, so every output gets its Keras name; an
    internal tensor that already has that name is renamed out of the way first.
    """
    graph = proto.graph
    if len(names) != len(graph.output) or len(set(names)) != len(names):
        raise GraphkitError(
            f"cannot name the ONNX outputs after the model's outputs {names}: "
            f"tf2onnx made {len(graph.output)} outputs"
        )
    graphs = list(_all_graphs(graph))  # Loop/If/Scan bodies read outer names too
    tensors = {t for g in graphs for n in g.node for t in (*n.input, *n.output)}
    tensors |= {v.name for g in graphs for v in (*g.input, *g.initializer, *g.value_info)}
    if {i.name for i in graph.input} & set(names):
        clash = sorted({i.name for i in graph.input} & set(names))
        raise GraphkitError(f"an output and an input are both named {clash[0]!r}")

    def rename(old: str, new: str) -> None:
        for g in graphs:
            for node in g.node:
                for i, o in enumerate(node.output):
                    if o == old:
                        node.output[i] = new
                for i, o in enumerate(node.input):
                    if o == old:
                        node.input[i] = new
            for value in (*g.output, *g.value_info):
                if value.name == old:
                    value.name = new

    def spare(base: str) -> str:
        name, k = base, 1
        while name in tensors:
            name, k = f"{base}_{k}", k + 1
        tensors.add(name)
        return name

    # Two steps, so that outputs can also swap names: first out of the way, then final.
    staged = []
    for out in list(graph.output):
        staged.append(spare(f"{out.name}__graphkit_out"))
        rename(out.name, staged[-1])
    for old, new in zip(staged, names):
        if new in tensors:  # an internal tensor holds the name: it gets another one
            rename(new, spare(f"{new}__internal"))
        rename(old, new)
        tensors.add(new)


def _all_graphs(graph):
    """``graph`` and every subgraph below it (node attributes of type GRAPH or GRAPHS)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_graphs(attr.g)
            for sub in attr.graphs:
                yield from _all_graphs(sub)


def check_proto(proto) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise GraphkitError(
            f"the exported model fails onnx.checker: {one_line(exc, with_type=False)}"
        ) from exc


def default_onnx_path(source: str | os.PathLike) -> Path:
    src = Path(source)
    return src.with_suffix(".onnx")


def check_export_options(
    model: str | os.PathLike | None,
    output: str | os.PathLike | None,
    *,
    force: bool = False,
    samples: int = VERIFY_SAMPLES,
    seq_len: int | None = None,
    opset: int = DEFAULT_OPSET,
    external_data: bool | None = None,
) -> Path | None:
    """The output path export will write (``model``'s default where ``output`` is None), checked:
    its suffix, an existing file, its folder; and the check's numbers. Cheap: the CLI runs
    it before importing TensorFlow, so that such mistakes answer at once."""
    from graphkit.io import check_output_path
    from graphkit.verification import check_options

    check_options(samples=samples, seq_len=seq_len)
    if not 13 <= int(opset) <= 21:
        raise GraphkitError(
            f"opset={opset}: graphkit exports opsets 13 to 21",
            cli=f"--opset {opset}: graphkit exports opsets 13 to 21",
        )
    if output is None and model is None:
        return None
    path = Path(output) if output is not None else default_onnx_path(model)
    if path.suffix.lower() != ".onnx":
        raise GraphkitError(f"{path}: the output must end in .onnx")
    if external_data:  # its data file is written too: an old one must not be overwritten
        check_output_path(_data_path(path), force=force)
    return check_output_path(path, force=force)


def export_onnx(
    model,
    output: str | os.PathLike | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    passes: Sequence[str] = (),
    fuse_onehot: bool = False,
    lower_gather: bool = False,
    verify: bool = True,
    force: bool = False,
    samples: int = VERIFY_SAMPLES,
    seq_len: int | None = None,
    unsafe: bool = False,
    imports=(),
    onehot_lambdas=(),
    inputs=None,
    progress=None,
    external_data: bool | None = None,
    index_dtype: str | None = None,
    fixed_shapes=None,
    target: str | None = None,
    ranges=None,
) -> ExportReport:
    """Export ``model`` (Keras model or .keras/.h5 path) to ONNX at ``output``.

    The ONNX model is rewritten by the ONNX passes named in ``passes`` (registered in
    ``graphkit.onnx_passes.PASSES``, run in order; ``fuse_onehot=True`` and
    ``lower_gather=True`` are aliases that add the pass of that name), checked (full check
    with shape inference), then compared with the Keras model in onnxruntime on synthesized
    inputs unless ``verify=False``. A model that is not equivalent is never written:
    NotEquivalentError (a GraphkitError whose ``report`` holds the comparison).
    The check runs ``samples`` synthesized samples, variable axes ``seq_len`` long (None:
    16, or a length both models take, found and noted), or the arrays of ``inputs`` (a
    .npz/.npy path or a dict). ``progress`` (a ``graphkit.progress.Progress``) hears each step.

    Weights go to ``<output>.data`` (external data, written beside the model as one unit with
    it) when they are larger than ``onnx_weights.THRESHOLD`` bytes, or always with
    ``external_data=True`` (never with ``False``).

    Deployment options, run after the other passes (deploy passes, see ``onnx_passes``):
    ``index_dtype="int32"`` makes every Gather/OneHot index int32, and int64 inputs that only
    feed indices (else GraphkitError naming the node that reads one as data);
    ``fixed_shapes={"tokens": (2, 160)}`` (or ``"2x160"``) fixes those inputs' shapes and
    folds the shape arithmetic, so that no dynamic dimension is left where shape inference
    can tell (the report names any that stays). The check then feeds batches of that size.

    ``target="nnapi"`` or ``"coreml"`` (``onnx_targets.TARGETS``) fits the export to that
    mobile execution provider: it needs ``fixed_shapes`` for every input and implies
    ``index_dtype="int32"``; the target's passes drop the index guards (the input contract
    becomes indices in [0, vocab), recorded in ``report.index_ranges``) and rewrite what the
    provider lacks. Once written and verified, onnxruntime's mobile usability checker gives
    ``report.coverage`` (nodes handled, partitions, the ops the provider lacks).

    ``ranges`` (``{name: (low, high)}`` or ``["NAME=LOW:HIGH", ...]``, see
    ``verification.inputs.parse_ranges``): the values the check synthesizes (and accepts in
    ``inputs``) for integer inputs whose range graphkit cannot read from the model.
    """

    from graphkit.onnx_passes import fix_shapes, run_passes
    from graphkit.onnx_targets import check_inputs_fixed, plan_passes
    from graphkit.verification.inputs import parse_ranges

    # unknown or conflicting names, and bad parameters, fail before the slow export
    pass_names, params = plan_passes(
        passes,
        fuse_onehot=fuse_onehot,
        lower_gather=lower_gather,
        index_dtype=index_dtype,
        fixed_shapes=fixed_shapes,
        target=target,
    )
    if fixed_shapes:
        fixed_shapes = fix_shapes.normalise_shapes(fixed_shapes)
    if target is not None:
        index_dtype = "int32"  # implied: the target's passes include int32_indices
    parse_ranges(ranges)  # a mistyped --range fails before the slow export
    stages = Stages(progress)
    path_given = isinstance(model, (str, os.PathLike))
    check_export_options(  # before a load that may take a minute (checks the opset too)
        model if path_given else None,
        output,
        force=force,
        samples=samples,
        external_data=external_data,
        seq_len=seq_len,
        opset=opset,
    )
    model, source, output = load_to(  # the suffix was checked above
        model,
        output,
        default_onnx_path,
        stages,
        force=force,
        unsafe=unsafe,
        imports=imports,
        onehot_lambdas=onehot_lambdas,
    )

    start = time.perf_counter()
    loaded = repair(model, source, stages, fixed_shapes=fixed_shapes)
    check_inputs_fixed(target, loaded.input_shapes, fixed_shapes or {})

    from graphkit import onnx_weights

    with stages("trace", "tracing the model and converting it with tf2onnx"):
        weights = None if external_data is None else onnx_weights.Weights(external=external_data)
        proto, weights = trace(loaded.exported, opset, weights)
    with stages("passes"):
        with onnx_weights.active(weights):  # the passes read and add tables of any size
            pass_results = run_passes(proto, pass_names, params=params)
        weights.drop_unused(proto)  # what no node reads is never written (counted, reported)
        weights.prune(proto)  # tables a pass replaced (the unfused one) are not written
        if not weights.arrays:  # else checked once written, with its data file
            check_proto(proto)
    seconds = time.perf_counter() - start

    counts = Counter(n.op_type for n in proto.graph.node)
    report = ExportReport(
        loaded.source,
        None,
        opset,
        len(proto.graph.node),
        dict(sorted(counts.items())),
        seconds,
        passes=pass_results,
        inputs=[i.name for i in proto.graph.input],
        outputs=[o.name for o in proto.graph.output],
        repairs=loaded.repairs,
        stages=stages.seconds,
    )
    report.external_bytes = weights.external_bytes
    report.left_out_initializers, report.left_out_bytes = weights.left_out
    if index_dtype or fixed_shapes:
        report.deploy = _deploy_summary(proto, index_dtype, fixed_shapes)
    from graphkit.onnx_passes.drop_index_guards import index_ranges

    report.target, report.index_ranges = target, index_ranges(proto)
    check = Check(samples, seq_len, inputs, stages.say, ranges) if verify else None

    def checked(path: Path) -> None:  # the written file: verified, then the target's checker
        if check is not None:
            from graphkit.backends.onnx_backend import OnnxBackend

            verify_against_keras(
                report, loaded.model, OnnxBackend(path), check, stages, label="ONNX export"
            )
        _covered(report, path, stages)

    stages.say.step("writing and checking the ONNX model")
    if output is None or not weights.arrays:
        report.size_bytes = write_file(
            output,
            force=force,
            write=lambda path: _write_checked(proto, weights, path, verify),
            check=checked,
            stages=stages,
            prefix="graphkit-export-",
            name="model.onnx",
        )
        if output is None:
            return report
        stale = _data_path(output)
        if force and stale.exists():  # an earlier export's data: replaced by nothing
            stale.unlink()
            report.removed = str(stale)
    else:
        with _atomic_unit(output, force=force) as folder:  # .onnx and .onnx.data, or neither
            written = folder / output.name
            with stages("write"):
                _write_checked(proto, weights, written, verify)
            checked(written)
            report.size_bytes = written.stat().st_size + _data_path(written).stat().st_size
        report.external_data = str(_data_path(output))
    report.output = str(output)
    if report.verify is not None:  # it ran on the temporary file that became ``output``
        report.verify.candidate = str(output)
    return report


def _deploy_summary(proto, index_dtype, fixed_shapes) -> dict[str, Any]:
    """What ``--index-dtype``/``--fixed-shape`` asked for, and each input's type and shape now."""
    from onnx import helper

    inputs = {}
    for i in proto.graph.input:
        t = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        inputs[i.name] = {"dtype": str(helper.tensor_dtype_to_np_dtype(t.elem_type)), "shape": dims}
    return {
        "index_dtype": index_dtype,
        "fixed_shapes": {k: list(v) for k, v in (fixed_shapes or {}).items()},
        "inputs": inputs,
    }


def _data_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".data")


def _write_checked(proto, weights, path: Path, verify: bool) -> None:
    """Write ``proto`` (and its external data) to ``path``; what is written must check."""
    import onnx

    try:
        data = weights.write(proto, path)
    except OSError as exc:  # disk full, quota: one line, and the unit is removed
        raise GraphkitError(f"{path.name}: cannot write it ({exc.strerror or exc})") from exc
    if data is not None:
        try:  # by path: the checker reads the data file's locations too
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:
            raise GraphkitError(
                f"the exported model fails onnx.checker: {one_line(exc, with_type=False)}"
            ) from exc
    if not verify:  # what is written must read back; the check reads it otherwise
        from graphkit.backends import check_onnx_file

        check_onnx_file(path)


@contextlib.contextmanager
def _atomic_unit(output: Path, *, force: bool):
    """A temporary folder beside ``output``; on success its ``output.name`` and
    ``output.name + ".data"`` replace the targets (data first), else nothing changes."""
    import shutil
    import tempfile

    from graphkit import interrupts
    from graphkit.io import _sync_dir, check_output_path

    data_target = _data_path(output)
    check_output_path(output, force=force)
    check_output_path(data_target, force=force)
    with interrupts.deferred():
        try:
            folder = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
        except OSError as exc:
            raise GraphkitError(
                f"{output}: cannot write in {output.parent} ({exc.strerror or exc})"
            ) from exc
        interrupts.register(str(folder))
    try:
        yield folder
        for target in (output, data_target):
            if not force and target.exists():
                raise GraphkitError(
                    f"{target}: appeared while writing (pass --force to overwrite it)"
                )
        from graphkit import interrupts

        try:
            with interrupts.deferred():  # the pair is renamed together, or an error says so
                os.replace(folder / data_target.name, data_target)
                os.replace(folder / output.name, output)
        except OSError as exc:
            raise GraphkitError(f"{output}: cannot write it ({exc.strerror or exc})") from exc
        _sync_dir(output.parent)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        interrupts.unregister(str(folder))


def _covered(report: ExportReport, path: Path, stages: Stages) -> ExportReport:
    """``--target``: what onnxruntime's mobile usability checker says of the written model."""
    if report.target is None:
        return report
    from graphkit.onnx_targets import coverage

    with stages("target", "running onnxruntime's mobile usability checker"):
        report.coverage = coverage(path, report.target)
    return report
