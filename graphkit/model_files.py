"""Reading Keras model files without Keras: the format, the archive's and the HDF5 file's checks
within ``graphkit.limits``, and the stored model config.

Its own module so that both ``graphkit.io`` (loading) and ``graphkit.lambdas.adopt`` (which
reads a file's Lambda layers before loading it) use it without importing each other.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

from graphkit import limits
from graphkit.errors import GraphkitError, one_line

KERAS_SUFFIXES = (".keras",)
H5_SUFFIXES = (".h5", ".hdf5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def model_format(path: Path) -> str:
    """Return 'keras' or 'h5' from the file's extension, or raise a GraphkitError."""
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix in H5_SUFFIXES:
        return "h5"
    raise GraphkitError(
        f"{path}: unsupported extension {path.suffix or '(none)'!r}; expected .keras or .h5"
    )


def check_model_file(path: str | os.PathLike) -> tuple[Path, str]:
    """Check that ``path`` looks like a Keras model file before Keras sees it.

    Keras reports an empty file, a folder or a truncated zip as "file not found";
    we say what is actually wrong.
    """
    path = Path(path)
    if not path.exists():
        raise GraphkitError(f"{path}: no such file")
    saved_model = _saved_model_hint(path)
    if saved_model:
        raise GraphkitError(saved_model)
    if path.is_dir():
        raise GraphkitError(f"{path}: is a directory, not a model file")
    fmt = model_format(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise GraphkitError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if size == 0:
        raise GraphkitError(f"{path}: empty file, not a Keras model")
    if fmt == "keras":
        if not zipfile.is_zipfile(path):
            raise GraphkitError(f"{path}: not a Keras .keras archive (not a zip file)")
        _check_keras_archive(path, size)
        from graphkit.h5_probe import start_keras_weights

        start_keras_weights(path)  # its HDF5 weights, read in a child meanwhile
    elif head != HDF5_SIGNATURE:
        raise GraphkitError(f"{path}: not an HDF5 file")
    return path, fmt


# What a hostile zip can raise from zipfile and the decompressors, beyond BadZipFile: a bad
# offset (OSError, ValueError), a truncated stream (EOFError, zlib.error), a UTF-8 flagged
# name that is not UTF-8 (ValueError), a bad extra field (struct.error).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    zlib.error,
    struct.error,
)


def _check_keras_archive(path: Path, size: int) -> None:
    """Refuse a ``.keras`` archive beyond ``graphkit.limits``, then CRC-check what Keras reads.

    Only the central directory is trusted for the refusals (nothing is inflated); the reads
    that follow are bounded by the sizes it declares, and zipfile stops each stream there.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_members(path, infos, size)
            for info in infos:
                if info.is_dir():
                    continue
                if info.filename == "config.json":  # its text and depth too, before TensorFlow
                    data = _read_member(zf, info, path, cap=limits.MAX_CONFIG_BYTES, keep=True)
                    parse_config_json(_utf8(data, path, "config.json"), f"{path}: config.json")
                    continue
                cap = limits.MAX_CONFIG_BYTES if info.filename.endswith(".json") else None
                _read_member(zf, info, path, cap=cap, keep=False)
    except GraphkitError:
        raise
    except _ZIP_ERRORS as exc:
        raise GraphkitError(f"{path}: corrupt .keras archive ({one_line(exc)})") from exc


def _check_members(path: Path, infos: list[zipfile.ZipInfo], size: int) -> None:
    """The central directory's refusals: member count, names, methods, flags, sizes."""
    if len(infos) > limits.MAX_KERAS_MEMBERS:
        raise GraphkitError(
            f"{path}: the archive lists {len(infos)} members, over the limit of "
            f"{limits.MAX_KERAS_MEMBERS} (graphkit.limits.MAX_KERAS_MEMBERS)"
        )
    if not any(info.filename == "config.json" for info in infos):
        raise GraphkitError(f"{path}: not a Keras .keras archive (no config.json inside)")
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if name in seen:
            raise GraphkitError(
                f"{path}: corrupt .keras archive (member {_member(name)} is listed twice)"
            )
        seen.add(name)
        if name not in limits.KERAS_MEMBERS and not name.startswith(limits.KERAS_ASSETS_FOLDER):
            raise GraphkitError(
                f"{path}: member {_member(name)} is not part of a Keras model (a .keras archive holds "
                f"{', '.join(limits.KERAS_MEMBERS)} and {limits.KERAS_ASSETS_FOLDER}...; "
                "graphkit.limits.KERAS_MEMBERS)"
            )
        if info.flag_bits & 0x1:
            raise GraphkitError(
                f"{path}: member {_member(name)} is encrypted; Keras cannot read it "
                "(graphkit.limits.KERAS_COMPRESSION_METHODS)"
            )
        if info.compress_type not in limits.KERAS_COMPRESSION_METHODS:
            methods = " or ".join(limits.KERAS_COMPRESSION_METHODS.values())
            raise GraphkitError(
                f"{path}: member {_member(name)} uses compression method {info.compress_type}; a .keras "
                f"member is {methods} (graphkit.limits.KERAS_COMPRESSION_METHODS)"
            )
        if name.endswith(".json") and info.file_size > limits.MAX_CONFIG_BYTES:
            raise GraphkitError(
                f"{path}: {name} declares {limits.size_text(info.file_size)}, over the limit of "
                f"{limits.size_text(limits.MAX_CONFIG_BYTES)} (graphkit.limits.MAX_CONFIG_BYTES)"
            )
        if (
            info.file_size > limits.MAX_INFLATION_FLOOR_BYTES
            and info.file_size > limits.MAX_INFLATION_RATIO * info.compress_size
        ):
            raise GraphkitError(
                f"{path}: member {_member(name)} declares {limits.size_text(info.file_size)} stored in "
                f"{limits.size_text(info.compress_size)}, over the limit of {limits.MAX_INFLATION_RATIO} "
                "times (graphkit.limits.MAX_INFLATION_RATIO): a zip bomb?"
            )
        total += info.file_size
    if total > limits.MAX_INFLATION_RATIO * size + limits.MAX_INFLATION_FLOOR_BYTES:
        raise GraphkitError(
            f"{path}: the archive declares {limits.size_text(total)} in a {limits.size_text(size)} file, over the "
            f"limit of {limits.MAX_INFLATION_RATIO} times (graphkit.limits.MAX_INFLATION_RATIO): "
            "a zip bomb?"
        )


def _read_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, *, cap: int | None, keep: bool
) -> bytes:
    """Inflate one member in chunks (zipfile checks its CRC at the end); stop past ``cap``.

    Returns its bytes if ``keep``, else b"" (a CRC check that holds one chunk at a time).
    """
    parts: list[bytes] = []
    read = 0
    with zf.open(info) as fh:
        while chunk := fh.read(limits.ZIP_READ_CHUNK_BYTES):
            read += len(chunk)
            if cap is not None and read > cap:
                raise GraphkitError(
                    f"{path}: {info.filename} holds over {limits.size_text(cap)}, the limit "
                    "(graphkit.limits.MAX_CONFIG_BYTES)"
                )
            if keep:
                parts.append(chunk)
    return b"".join(parts)


def _member(name: str) -> str:
    """A member's name for an error line: quoted, escaped, at most 80 characters."""
    return repr(name[:80] + ("..." if len(name) > 80 else ""))


def _saved_model_hint(path: Path) -> str | None:
    """What to say about a TensorFlow SavedModel (a folder holding ``saved_model.pb``, or that
    file): Keras 3 loads neither as a model, and graphkit needs the Keras graph."""
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            return None
        what = f"{path}: is a TensorFlow SavedModel folder"
    elif path.name == "saved_model.pb":
        what = f"{path}: is the graph of a TensorFlow SavedModel (folder {path.parent})"
    else:
        return None
    return (
        f"{what}, not a Keras model file: graphkit reads .keras (and legacy .h5) files; "
        "save the model as .keras from the code that built or loads it (model.save('m.keras'))"
    )


def read_config(path: Path, fmt: str) -> dict | None:
    """The model config stored in a ``.keras`` or ``.h5`` file, as JSON data (None if none).

    Read within ``graphkit.limits``: MAX_CONFIG_BYTES of text, MAX_JSON_DEPTH of nesting.
    """
    if fmt == "keras":
        try:
            with zipfile.ZipFile(path) as zf:
                try:
                    info = zf.getinfo("config.json")
                except KeyError:
                    raise GraphkitError(
                        f"{path}: not a Keras .keras archive (no config.json inside)"
                    ) from None
                _check_members(path, [info], limits.MAX_CONFIG_BYTES)
                data = _read_member(zf, info, path, cap=limits.MAX_CONFIG_BYTES, keep=True)
        except GraphkitError:
            raise
        except _ZIP_ERRORS as exc:
            raise GraphkitError(f"{path}: corrupt .keras archive ({one_line(exc)})") from exc
        where = "config.json"
    else:
        data = _h5_config_bytes(path)
        if data is None:
            return None
        where = "the model_config attribute"
    return parse_config_json(_utf8(data, path, where), f"{path}: {where}")


def _utf8(data: bytes, path: Path, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GraphkitError(
            f"{path}: {where} is not UTF-8 text (byte {exc.start}); not a Keras model config"
        ) from None


def _h5_config_bytes(path: Path) -> bytes | None:
    """The ``model_config`` attribute of an .h5 file, its size checked before it is read; read
    in a child process (``graphkit.h5_probe``): a damaged file cannot crash this one."""
    from graphkit.h5_probe import probe

    return probe(path).config


def parse_config_json(text: str, where: str) -> dict | None:
    """``json.loads`` within ``limits.MAX_JSON_DEPTH``; a dict, or None for another value."""
    import json

    try:
        config = json.loads(text)
    except RecursionError:
        raise GraphkitError(
            f"{where} is nested deeper than the limit of {limits.MAX_JSON_DEPTH} levels "
            "(graphkit.limits.MAX_JSON_DEPTH)"
        ) from None
    except ValueError as exc:
        raise GraphkitError(
            f"{where} is not valid JSON ({one_line(exc, with_type=False)})"
        ) from exc
    if json_depth(config) > limits.MAX_JSON_DEPTH:
        raise GraphkitError(
            f"{where} is nested more than {limits.MAX_JSON_DEPTH} levels deep, the limit "
            "(graphkit.limits.MAX_JSON_DEPTH)"
        )
    return config if isinstance(config, dict) else None


def json_depth(value: object) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion; stops counting one
    level past ``limits.MAX_JSON_DEPTH``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= limits.MAX_JSON_DEPTH:
                stack.extend((v, depth) for v in item if isinstance(v, (dict, list)))
    return deepest
