"""Loading and saving models safely: check files ourselves, translate Keras' errors, write atomically."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

from graphkit import keras_versions
from graphkit.errors import GraphkitError, one_line

# The file readers live in graphkit.model_files (Lambda adoption reads files too); their names
# stay importable from here (_read_member: tests).
from graphkit.model_files import (  # noqa: F401
    H5_SUFFIXES,
    HDF5_SIGNATURE,
    KERAS_SUFFIXES,
    _read_member,
    check_model_file,
    json_depth,
    model_format,
    parse_config_json,
    read_config,
)


def import_user_code(modules: Iterable[str]) -> None:
    """Import the user's own modules or ``.py`` files (``--import``), e.g. to register custom layers."""
    for spec_text in modules:
        path = Path(spec_text)
        try:
            if spec_text.endswith(".py"):
                if not path.is_file():
                    raise GraphkitError(f"--import {spec_text}: no such file")
                name = f"graphkit_user_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise GraphkitError(f"--import {spec_text}: cannot import this file")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(spec_text)
        except GraphkitError:
            raise
        except ModuleNotFoundError as exc:
            raise GraphkitError(f"--import {spec_text}: {exc}") from exc
        except Exception as exc:  # the user's code failed: say where, keep it one line
            raise GraphkitError(
                f"--import {spec_text} failed: {type(exc).__name__}: {exc}"
            ) from exc


# Keys that Keras 2 / tf.keras wrote into layer configs with their default value and that
# Keras 3 refuses (keras-team/keras#20750 for time_major). A non-default value changes the
# maths, so it is refused with the reason instead of being dropped.
KERAS2_ONLY_DEFAULTS = {"time_major": False}


def _strip_keras2_keys(config, where="model"):
    """Return ``config`` without KERAS2_ONLY_DEFAULTS keys, recursively; count what was dropped."""
    dropped = 0
    if isinstance(config, dict):
        out = {}
        name = config.get("name", where) if isinstance(config.get("name"), str) else where
        for key, value in config.items():
            if key in KERAS2_ONLY_DEFAULTS:
                if value != KERAS2_ONLY_DEFAULTS[key]:
                    raise GraphkitError(
                        f"layer {name!r} was saved with {key}={value!r}, which Keras 3 does not support"
                    )
                dropped += 1
                continue
            out[key], n = _strip_keras2_keys(value, name)
            dropped += n
        return out, dropped
    if isinstance(config, list):
        items = [_strip_keras2_keys(v, where) for v in config]
        return [v for v, _ in items], sum(n for _, n in items)
    return config, 0


@contextlib.contextmanager
def keras_work_folder(path: Path):
    """Yield the path to give Keras' loader so that every file it creates is graphkit's.

    Keras extracts the assets of a .keras archive with ``tempfile.mkdtemp()`` (every member,
    when there are more than 3) and, short of memory, the weights into a folder beside the
    file it opened. Both land in a folder registered with ``graphkit.interrupts``: ``tempfile``'s
    default points there, and Keras opens the model through a symbolic link inside it.
    """
    from graphkit import interrupts

    with interrupts.temporary_tempdir(prefix="graphkit-keras-") as folder:
        link = folder / path.name
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError:  # no symbolic links here: the weights fallback stays beside the file
            link = path
        yield link


@contextlib.contextmanager
def _readable(path: Path, fmt: str, *, onehot_lambdas, unsafe: bool, found: list):
    """Yield ``path``, or a temporary copy whose config Keras 3 reads as graphkit means it.

    Two rewrites of the config, and nothing else: Keras 2 keys that Keras 3 refuses are
    dropped (``.h5``), and adopted one-hot Lambdas become graphkit's OneHot (see
    ``graphkit.lambdas.adopt``). ``found`` receives the ``Adoption`` (what became of every
    Lambda), so that a refusal can say which flag adopts them.
    """
    import json

    from graphkit.lambdas.adopt import adopt

    config = read_config(path, fmt)
    if config is None:
        yield path
        return
    dropped = 0
    if fmt == "h5":
        config, dropped = _strip_keras2_keys(config)
    adoption = adopt(config, onehot_lambdas, unsafe=unsafe, legacy=fmt == "h5")
    found.append(adoption)
    if not dropped and not adoption.changed:
        yield path
        return
    from graphkit.interrupts import temporary_directory

    with temporary_directory(prefix="graphkit-load-") as tmp:
        copy = Path(tmp) / path.name
        text = json.dumps(config)
        if fmt == "h5":
            import h5py

            shutil.copyfile(path, copy)
            with h5py.File(copy, "r+") as f:
                f.attrs["model_config"] = text
        else:
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(copy, "w") as dst:
                for item in src.infolist():
                    if item.filename == "config.json":
                        dst.writestr(item, text.encode("utf-8"))
                        continue
                    # streamed: the weights of a big model are never all in memory
                    with src.open(item) as fin, dst.open(item, "w", force_zip64=True) as fout:
                        shutil.copyfileobj(fin, fout, 16 << 20)
        yield copy


def load_model(
    path: str | os.PathLike,
    *,
    unsafe: bool = False,
    imports: Iterable[str] = (),
    compile: bool = True,
    notes: list[str] | None = None,
    onehot_lambdas=(),
    findings: list | None = None,
):
    """Load a Keras 3 ``.keras`` or legacy ``.h5`` model in safe mode.

    ``unsafe=True`` allows Lambda layers and code in the config; only for files you trust.
    Their Keras 2 backend calls (``K.one_hot``...) then run on Keras 3.
    ``imports`` are the user's modules/files that register custom layers. A compile config
    that Keras 3 cannot restore (Keras 2 losses and metrics such as ``'mse'``) is dropped,
    and ``notes`` (if given) receives a line saying so: the model itself loads.
    ``onehot_lambdas`` (names, ``NAME=DEPTH`` strings or a ``{name: depth}`` mapping) names
    the Lambda layers that compute ``one_hot(cast(x), depth)``: they load as graphkit's
    ``OneHot`` without their code being run; so do Lambdas whose saved code certainly is
    such a one-hot (safe mode only). ``findings`` receives one ``Finding`` per adoption.
    """
    from graphkit.lambdas.adopt import AdoptionError, parse_requests

    requested = (
        dict(onehot_lambdas) if isinstance(onehot_lambdas, dict) else parse_requests(onehot_lambdas)
    )
    path, fmt = check_model_file(path)
    import_user_code(imports)
    if fmt == "keras":  # the HDF5 weights, read in a child first: a damaged file cannot crash
        from graphkit.h5_probe import check_keras_weights

        check_keras_weights(path)
    import keras

    import graphkit.layers  # noqa: F401  (registers graphkit>OneHot etc.)
    from graphkit import _keras_api

    adoptions: list = []

    def load(with_compile: bool):
        adoptions.clear()
        with _readable(
            path, fmt, onehot_lambdas=requested, unsafe=unsafe, found=adoptions
        ) as readable:
            shim = (
                _keras_api.lambda_globals(_keras2_names()) if unsafe else contextlib.nullcontext()
            )
            with shim, warnings.catch_warnings():
                # Keras 2 Sequential files give their first layer an input_shape
                warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
                with keras_work_folder(readable) as seen:
                    return keras.saving.load_model(
                        str(seen), compile=with_compile, safe_mode=not unsafe
                    )

    try:
        try:
            model = load(compile)
        except AdoptionError as exc:
            raise GraphkitError(f"{path}: {exc}") from exc
        except GraphkitError:
            raise
        except Exception as exc:
            if not (compile and _is_compile_config_error(exc)):
                raise
            model = load(False)
            if notes is not None:
                notes.append(
                    "the compile config could not be restored in Keras 3 "
                    f"({one_line(_root_cause(exc), with_type=False)}): dropped; compile the "
                    "model again before training it"
                )
    except GraphkitError:
        raise
    except Exception as exc:
        message = explain_load_error(exc)
        hint = adoptions[0].hint(unsafe) if adoptions else ""
        about_lambda = "lambda" in f"{exc} {_root_cause(exc)}".lower()
        if unsafe and message.startswith("refused in safe mode"):
            message = f"cannot load the model: {one_line(_lambda_cause(exc))}"
        if hint and unsafe and about_lambda:
            message = f"cannot load a Lambda: {hint}"
        elif adoptions and adoptions[0].adopted:
            adopted = ", ".join(
                f"{i.name!r} as OneHot({i.depth})"
                for i in adoptions[0].infos
                if i.name in adoptions[0].adopted
            )
            message += f" (with Lambda {adopted}: is that depth right?)"
        elif hint and about_lambda:
            message = (
                f"refused in safe mode: {hint}; pass --unsafe only if you trust this file "
                "(it runs code from it)"
            )
        raise GraphkitError(f"{path}: {keras_versions.explain(path, message)}") from exc
    if not isinstance(model, keras.Model):
        raise GraphkitError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    keras_versions.note_if_newer(path, notes)
    if adoptions:
        _check_adopted_depths(model, adoptions[0], path)
        _report_adoptions(model, adoptions[0], notes, findings)
    return model


def _check_adopted_depths(model, adoption, path) -> None:
    """An adopted OneHot's depth must be what the layers after it were trained on."""
    from graphkit import _keras_api

    for name in adoption.adopted:
        layer = next(
            (
                x
                for x in _keras_api.flatten_layers(model)
                if x.name == name and hasattr(x, "input_dim")
            ),
            None,
        )
        if layer is None:
            continue
        for consumer in _keras_api.consumers_of(layer):
            kernels = [
                w
                for w in getattr(consumer, "weights", [])
                if w.path.rsplit("/", 1)[-1] == "kernel" and len(w.shape) == 2
            ]
            if kernels and kernels[0].shape[0] != layer.input_dim:
                raise GraphkitError(
                    f"{path}: Lambda {name!r} adopted as OneHot({layer.input_dim}) feeds "
                    f"{consumer.name!r}, whose kernel takes {kernels[0].shape[0]} inputs: its "
                    f"depth is {kernels[0].shape[0]} (--onehot-lambda {name}={kernels[0].shape[0]})"
                )


def _lambda_cause(exc: BaseException) -> BaseException:
    """The error a Lambda's own code raised (``NameError: name 'NUM' is not defined``), if any,
    from the chain Keras wraps around it."""
    seen, cur = set(), exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (NameError, AttributeError, TypeError)) and "Lambda" not in str(cur):
            return cur
        cur = cur.__cause__ or cur.__context__
    return _root_cause(exc)


def _keras2_names() -> dict:
    """The globals a Keras 2 Lambda's code expects (``K``, ``backend``, ``tf``...)."""
    from graphkit.lambdas import keras2_backend

    return keras2_backend.lambda_globals()


def _report_adoptions(model, adoption, notes, findings) -> None:
    from graphkit.engine import Finding

    if findings is None:
        if notes is not None:
            notes.extend(adoption.notes)
        return
    for name in adoption.adopted:
        findings.append(
            Finding(
                path=name,
                layer_class="Lambda",
                rule="onehot_lambda",
                status="normalised",
                new_layers=[name],
                notes=[n for n in adoption.notes if f"Lambda {name!r}" in n],
            )
        )


def _is_compile_config_error(exc: BaseException) -> bool:
    """Keras 3 failing on a Keras 2 compile config (loss, metrics), not on the model."""
    text = f"{exc} {_root_cause(exc)}"
    return "KerasSaveable" in text or "keras.metrics." in text or "keras.losses." in text


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None or exc.__context__ is not None:
        if id(exc) in seen:
            break
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if isinstance(nxt, GraphkitError):
            return nxt
        exc = nxt
    return exc


def explain_load_error(exc: BaseException) -> str:
    """Turn Keras' loading errors into one line a user understands."""
    import re

    texts = [str(exc), str(_root_cause(exc))]
    text = " ".join(texts)
    root = _root_cause(exc)
    if isinstance(root, GraphkitError):
        return str(root)
    m = re.search(r"Could not locate function '([^']+)'", text)
    if m and "Lambda" in text:
        return (
            f"a Lambda layer calls function {m.group(1)!r}, which Keras 3 saves by name only: "
            "pass --import MODULE_OR_FILE.py that defines it (or --onehot-lambda NAME if it "
            "is a one-hot)"
        )
    if "safe_mode" in text or "unsafe" in text.lower() or "Lambda" in text:
        return (
            "refused in safe mode: the model contains a Lambda layer or other code in its "
            "config; pass --unsafe only if you trust this file (it runs code from it)"
        )
    name = unknown_class(text)
    if name is not None:
        if "Unknown layer" in text and is_keras_operation(name):
            # Only .h5 files say "Unknown layer"; a user's own layer may share the name.
            return (
                f"unknown layer {name!r}: if it is Keras' own operation of that name, Keras' "
                ".h5 writer stored it as a layer (it does so for the masks of Functional "
                "models) and cannot load it back: save the model as .keras from the code that "
                "built it; if it is your own layer, pass --import MODULE_OR_FILE.py"
            )
        return (
            f"unknown layer class {name!r}: pass --import MODULE_OR_FILE.py with the "
            "code that defines and registers it"
        )
    m = re.search(r"Unrecognized keyword arguments passed to (\w+): (\{.*?\})", text)
    if m:
        return (
            f"{m.group(1)} config has keyword arguments Keras 3 does not accept {keras_versions.quoted_config(text, m.start(2))} "
            "(a model saved by an older Keras?)"
        )
    if "Bad CRC-32" in text or "Bad magic number" in text:
        return f"corrupt .keras archive ({one_line(root, with_type=False)})"
    if "truncated file" in text or "Unable to synchronously open file" in text:
        return "corrupt or truncated HDF5 file"
    if "No model config found" in text or "model_config" in text:
        return "not a Keras model file (no model config: weights only?)"
    return f"cannot load the model: {one_line(root)}"


def unknown_class(text: str) -> str | None:
    """The class name in Keras' "unknown layer/class" loading errors, if that is what it is."""
    import re

    m = re.search(r"Could not locate (?:class|function) '([^']+)'", text) or re.search(
        r"Unknown (?:layer|object|class)[^:]*: '?([A-Za-z_][\w.>]*)'?", text
    )
    return m.group(1) if m else None


def is_keras_operation(name: str) -> bool:
    """Is ``name`` (unregistered: no ``package>``) one of Keras' own operations (``NotEqual``...)?"""
    if ">" in name:
        return False  # a registered name: a user's class
    from graphkit import _keras_api

    return _keras_api.operation_class(name) is not None


def _sync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_output_path(path: str | os.PathLike, *, force: bool) -> Path:
    """Refuse to clobber (unless ``force``) or to write somewhere we cannot."""
    path = Path(path)
    if path.is_dir():
        raise GraphkitError(f"{path}: is a directory")
    if path.exists() or path.is_symlink():
        if not force:
            raise GraphkitError(f"{path}: already exists (pass --force to overwrite it)")
    check_parent_writable(path)
    return path


def check_parent_writable(path: str | os.PathLike) -> None:
    """The folder that will hold ``path`` exists and can be written to."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise GraphkitError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise GraphkitError(f"{path}: folder {parent} is not writable")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, force: bool):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was.
    A symlink at ``path`` is replaced, never written through.
    """
    from graphkit import interrupts

    path = check_output_path(path, force=force)
    try:
        with interrupts.deferred():  # an interrupt removes it: no exit before it is registered
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
            )
            interrupts.register(tmp)
    except OSError as exc:
        raise GraphkitError(
            f"{path}: cannot write in {path.parent} ({exc.strerror or exc})"
        ) from exc
    os.close(fd)
    os.unlink(tmp)  # Keras wants to create the file itself
    try:
        try:
            yield Path(tmp)
            if not force and path.exists():
                raise GraphkitError(
                    f"{path}: appeared while writing (pass --force to overwrite it)"
                )
            os.replace(tmp, path)
        except OSError as exc:  # disk full, quota, permissions: the target is left as it was
            raise GraphkitError(f"{path}: cannot write it ({exc.strerror or exc})") from exc
        _sync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        interrupts.unregister(tmp)


def save_model(model, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Save ``model`` to ``.keras`` or ``.h5`` (by extension) atomically, and prove that
    Keras reads back the very same weights (see ``check_reloads``)."""
    path = Path(path)
    model_format(path)
    with atomic_output(path, force=force) as tmp:
        _save(model, tmp, path)
        check_reloads(model, tmp, path)
    return path


def save_owned(holder, attribute: str, path: str | os.PathLike, *, force: bool = False) -> Path:
    """``save_model`` of ``getattr(holder, attribute)`` for a caller that holds no other
    reference to it: once written and fingerprinted, the model is dropped before the check
    loads the file back, and the model read back takes its place. A model of any size is
    then never in memory twice."""
    import gc

    path = Path(path)
    model_format(path)
    with atomic_output(path, force=force) as tmp:
        _save(getattr(holder, attribute), tmp, path)
        expected = weight_digests(getattr(holder, attribute))
        lambdas = _lambda_functions(getattr(holder, attribute))
        setattr(holder, attribute, None)
        gc.collect()
        setattr(
            holder, attribute, check_reloads(None, tmp, path, expected=expected, lambdas=lambdas)
        )
    return path


def _save(model, tmp: Path, path: Path) -> None:
    from graphkit import interrupts

    try:
        with interrupts.temporary_tempdir(prefix="graphkit-keras-"):  # Keras' asset folder
            model.save(str(tmp))
    except Exception as exc:
        raise GraphkitError(f"{path}: cannot save the model: {one_line(exc)}") from exc


def _lambda_functions(model) -> list:
    from graphkit import _keras_api

    return _keras_api.lambda_functions(model)


CHUNK_BYTES = 64 << 20  # weights are fingerprinted in slices of this size: no full copy


def weight_digests(model) -> list[tuple[str, tuple, str, str]]:
    """(path, shape, dtype, sha256) of every weight, read in slices (tables of any size)."""
    import hashlib

    import keras
    import numpy as np

    out = []
    for w in model.weights:
        shape = tuple(w.shape)
        dtype = keras.backend.standardize_dtype(w.dtype)
        digest = hashlib.sha256()
        value = w.value if hasattr(w, "value") else w
        if not shape:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(value)).tobytes())
        else:
            per_row = max(1, int(np.prod(shape[1:])) * np.dtype(dtype).itemsize)
            step = max(1, CHUNK_BYTES // per_row)
            for begin in range(0, shape[0], step):
                part = keras.ops.convert_to_numpy(value[begin : begin + step])
                digest.update(np.ascontiguousarray(part).tobytes())
        out.append((w.path, shape, dtype, digest.hexdigest()))
    return out


def check_reloads(model, written: Path, target: Path, *, expected=None, lambdas=None):
    """Load ``written`` back and compare its weights with ``model``'s (or with ``expected``,
    their ``weight_digests``); refuse what differs. Returns the model read back.

    Keras writes some files that it cannot read (a Functional model with masks to .h5:
    "Unknown layer: 'NotEqual'"): such a file must never reach the user's folder.
    """
    import keras

    from graphkit import _keras_api

    if expected is None:
        expected = weight_digests(model)
    if lambdas is None:
        lambdas = _keras_api.lambda_functions(model) if model is not None else []
    try:
        # Safe mode unless the model holds Lambdas (only --unsafe loads or in-memory models
        # do): the model's own code, which the caller already runs, is then read back.
        with _keras_api.lambda_globals(_keras2_names(), lambdas):
            with keras_work_folder(written) as seen:
                back = keras.saving.load_model(str(seen), compile=False, safe_mode=not lambdas)
    except Exception as exc:
        name = unknown_class(f"{exc} {_root_cause(exc)}")
        if name is not None and is_keras_operation(name):
            reason = (
                f"it stores Keras' own operation {name!r} as a layer, as Keras' .h5 writer does "
                "for the masks of Functional models; save as .keras instead"
            )
        else:
            reason = explain_load_error(exc)
        raise GraphkitError(
            f"{target}: Keras cannot load back the file it writes ({reason}); nothing was written"
        ) from exc
    found = weight_digests(back)
    if len(found) != len(expected):
        raise GraphkitError(
            f"{target}: the file Keras writes loads back with {len(found)} weights instead of "
            f"{len(expected)}; nothing was written"
        )
    for (path, *want), (_, *got) in zip(expected, found):
        if want != got:
            raise GraphkitError(
                f"{target}: weight {path!r} does not load back as it was saved; nothing was written"
            )
    return back
