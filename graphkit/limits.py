"""Every reader's limits on untrusted files, in one place, each with its reason.

A file beyond a limit is refused in one line that names the limit (``graphkit.limits.NAME``).
"""

from __future__ import annotations

# --- ONNX models and their metadata (backends/onnx_backend.py, onnx_passes/) ---

# protobuf cannot hold a message over 2 GiB, so no valid .onnx file is bigger (weights beyond
# that live in external data files, which are checked, never read, by graphkit).
MAX_ONNX_FILE_BYTES = 2**31

# Integers that graphkit reads from text inside a model (metadata such as
# graphkit.index_range.*, external-data offset/length): 18 ASCII digits hold every int64
# value graphkit writes; Python's int() is quadratic on long strings and refuses more than
# 4300 digits with a traceback, and str.isdigit() accepts digits like '²' that int() refuses.
MAX_METADATA_DIGITS = 18

# --- LiteRT (.tflite) models (backends/litert_backend.py) ---

# A flatbuffer's offsets are 32-bit, so a .tflite file whose weights sit inside the flatbuffer
# is under 2 GiB; the file is read whole into memory before the interpreter sees it.
MAX_TFLITE_FILE_BYTES = 2**31

# --- .npz/.npy inputs (verification/inputs.py load_inputs) ---

# Bytes of all arrays of one inputs file, checked from the .npy headers before anything is
# read (and never more than half the memory available then): an evaluation set of 100k
# sequences of 512 int64 tokens is 400 MB, so the cap is generous; a crafted few-MB .npz
# that declares gigabytes is refused by MAX_INFLATION_RATIO before this counts.
MAX_INPUT_BYTES = 4 << 30

# Members of one .npz: one per model input; zipfile holds every central-directory entry in
# memory, and a few-MB file can list a hundred thousand.
MAX_NPZ_MEMBERS = 1024

# --- .keras archives (io.check_model_file, io.read_config) ---

# The members Keras 3 reads from a .keras archive (keras/src/saving/saving_lib.py,
# _load_model_from_fileobj): config.json, then model.weights.h5 or model.weights.npz, and, when
# the archive lists more than 3 members, every member, extracted to disk for the asset store
# (assets/...). metadata.json is written beside them. Any other member is refused: Keras would
# extract it whole, and no Keras writer puts it there.
KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5", "model.weights.npz")
KERAS_ASSETS_FOLDER = "assets/"

# Members of one .keras archive: Keras extracts every one of them to disk when there are more
# than 3, and real models hold a handful of asset files (vocabularies, merges).
MAX_KERAS_MEMBERS = 10_000

# Compression methods graphkit reads in a .keras archive: stored (what Keras writes) and
# deflate (what zip tools write). Others (bzip2, lzma, AES, ...) are refused before any read,
# and so is the encrypted flag: Keras has no password to give.
KERAS_COMPRESSION_METHODS = {0: "stored", 8: "deflate"}

# Declared uncompressed size over stored size, per member and for the whole archive. Keras
# stores members uncompressed (ratio 1), deflate gives about 1.1 on float weights; a zip bomb
# declares 1000 (deflate's maximum is about 1032). Members up to MAX_INFLATION_FLOOR_BYTES are
# exempt (a small config or vocabulary compresses well, and inflating it costs little).
MAX_INFLATION_RATIO = 100
MAX_INFLATION_FLOOR_BYTES = 16 << 20

# Bytes of a model config: config.json in a .keras archive, the model_config attribute of an
# .h5 file. The configs of large KerasHub models are a few hundred KB; parsed JSON takes up to
# about 30 times its text in Python objects (small dicts), so 16 MiB stays under 1 GiB, and it
# is read in chunks that stop at this limit whatever the archive declares.
MAX_CONFIG_BYTES = 16 << 20

# Nesting depth of a model config's JSON: a nested Functional model inside another is about
# 10 levels per model; Python's json module raises RecursionError near 1000, and graphkit's
# own walks over the config recurse too.
MAX_JSON_DEPTH = 200

# Bytes read at once while inflating a member: the size cap is checked between chunks.
ZIP_READ_CHUNK_BYTES = 1 << 20

# --- Lambda bytecode (lambdas/marshal_data.py, lambdas/recognise.py) ---

# Bytes of one Lambda's marshalled function (after base64): a one-hot lambda is a few hundred
# bytes, and a Lambda whose code is bigger than this is no one-hot graphkit could adopt.
LAMBDA_MAX_MARSHAL_BYTES = 1 << 20

# Nesting of the marshalled objects (tuples in tuples, code in constants): real code nests a
# few levels; the reader recurses once per level.
LAMBDA_MAX_NESTING = 64

# Size of everything a marshalled function holds, counting a shared object (marshal's
# back-references) each time it is used, with strings and bytes counted by length: hashing,
# comparing or printing a constant walks it that way, so a 60-level chain of shared tuples
# (a few hundred bytes) would be 2^60 steps. Without sharing this is about the file's size.
LAMBDA_MAX_EXPANDED_SIZE = 4 * LAMBDA_MAX_MARSHAL_BYTES

# Bytes of a Lambda's instructions, and instructions decoded: one_hot(cast(x), depth) is about
# 15 instructions (under 200 bytes with Python 3.11+'s inline caches); graphkit decodes only
# Lambdas that call one_hot, to tell a plain one-hot from one that does more.
LAMBDA_MAX_BYTECODE_BYTES = 64 << 10
LAMBDA_MAX_INSTRUCTIONS = 4096

# EXTENDED_ARG prefixes before one instruction: CPython's arguments are 32-bit, so it writes at
# most 3; more would make one argument grow by 8 bits each (quadratic work on 500k of them).
LAMBDA_MAX_EXTENDED_ARGS = 3

# --- Proving a Lambda by running it (rules/lambda_to_onehot.py, --unsafe only) ---

# Depth (classes) of a one-hot Lambda that graphkit proves by running it on every index of
# [0, depth) and 256 beyond: the work is (depth + 256) x depth output values, 4.3e9 at this
# limit (11 s on the project's 2-core machine, 2026-12), run in chunks of
# LAMBDA_PROOF_CHUNK_VALUES; a deeper Lambda is kept (or adopted on the user's word with
# --onehot-lambda NAME). Vocabularies of one-hot Lambdas are far smaller.
LAMBDA_PROOF_MAX_DEPTH = 1 << 16

# Output values of one run of the Lambda during its proof (float32: 64 MiB), so that memory
# stays bounded whatever the depth; a single input row beyond this is refused.
LAMBDA_PROOF_CHUNK_VALUES = 1 << 24


def size_text(n: int) -> str:
    """``3.8 GiB``, ``16 MiB``, ``300 bytes``: a byte count as the limits' messages say it."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"
