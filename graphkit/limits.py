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

# --- .npz/.npy inputs (verification/inputs.py load_inputs) ---

# Bytes of all arrays of one inputs file, checked from the .npy headers before anything is
# read: inputs are batches of token ids or features (64M float32 values is far beyond a batch),
# and a crafted 4 MB .npz of zeros can declare gigabytes; with the copy that validation makes,
# 256 MiB keeps such a file under 1 GiB of memory.
MAX_INPUT_BYTES = 256 << 20

# Members of one .npz: one per model input; zipfile holds every central-directory entry in
# memory, and a few-MB file can list a hundred thousand.
MAX_NPZ_MEMBERS = 1024
