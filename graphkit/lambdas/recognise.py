"""Recognise a one-hot Lambda from its saved config, without running or loading its code.

What a Lambda computes is in its function's bytecode. graphkit reads that bytecode as data
(``marshal_data``) and looks at it two ways:

* **Recognised**: the function's names include ``one_hot``. Its depth comes from the
  Lambda's ``arguments`` (``num_classes``, ``depth``...), an integer constant in its code, or
  its saved output shape; the integer dtypes named in it (``uint8``) tell how indices are cast.
  ``inspect`` shows this, and ``--onehot-lambda NAME`` adopts it on the user's word.
* **Certain**: the instructions, decoded for the Python that wrote them, are nothing but a
  call tree ``one_hot(cast(...cast(x, DTYPE)...), DEPTH)``, optionally cast to a float dtype,
  where ``one_hot`` and ``cast`` are attributes of the usual modules (``K``, ``backend``,
  ``keras.ops``, ``tf``), ``x`` is the Lambda's input, each ``DTYPE`` an integer dtype and
  ``DEPTH`` an integer (a constant or one of the Lambda's ``arguments``). No other operation,
  name, closure or default. Only then is a Lambda adopted without being asked.

Instructions are decoded for Python 3.6-3.10 (one stable instruction set) and for the running
Python when it wrote the file (3.11+ change their instructions with every release; code that
does not start with this Python's RESUME, or whose inline caches are not zero, is taken as
another release's): bytecode of another 3.11+ release is recognised, never certain.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from graphkit.lambdas.marshal_data import (
    LAYOUT_36,
    LAYOUT_38,
    LAYOUT_311,
    CodeData,
    Long,
    UnreadableCode,
    read_base64_code,
)
from graphkit.limits import (
    LAMBDA_MAX_BYTECODE_BYTES,
    LAMBDA_MAX_EXTENDED_ARGS,
    LAMBDA_MAX_INSTRUCTIONS,
)

# Names that hold the backend modules one-hot Lambdas call through.
MODULES = {"K", "k", "backend", "keras", "ops", "tf", "tensorflow", "kb", "B", "math", "nn"}
INT_DTYPES = {
    "uint8": 8,
    "int8": 8,
    "uint16": 16,
    "int16": 16,
    "int32": 32,
    "uint32": 32,
    "int64": 64,
    "uint64": 64,
}
FLOAT_DTYPES = {"float16", "bfloat16", "float32", "float64"}
DEPTH_ARGUMENTS = ("num_classes", "depth", "n_classes", "nb_classes", "num_tokens", "input_dim")

# Python 3.6-3.10 instructions (the numbers did not change in those releases).
CLASSIC_OPS = {
    9: "NOP",
    83: "RETURN_VALUE",
    100: "LOAD_CONST",
    106: "LOAD_ATTR",
    116: "LOAD_GLOBAL",
    124: "LOAD_FAST",
    131: "CALL_FUNCTION",
    141: "CALL_FUNCTION_KW",
    144: "EXTENDED_ARG",
    160: "LOAD_METHOD",
    161: "CALL_METHOD",
}


@dataclass
class LambdaInfo:
    """What graphkit can tell about one saved Lambda layer without running it."""

    name: str
    function: str  # "lambda expression", "function 'to_one_hot'"
    readable: bool = False  # the code could be read as data
    one_hot: bool = False  # recognised: it calls one_hot (or is named so)
    certain: bool = False
    why_not_certain: str = ""
    depth: int | None = None
    depth_from: str = ""
    casts: list[str] = field(default_factory=list)  # integer dtypes the indices are cast to
    # its code was read and does more than one_hot(cast(x), depth): not a plain one-hot
    does_more: bool = False

    def formula(self) -> str:
        """``one_hot(cast(x, 'uint8'), 100)``: what an adoption computes."""
        inner = "x"
        for cast in self.casts:
            inner = f"cast({inner}, {cast!r})"
        return f"one_hot({inner}, {self.depth if self.depth is not None else 'DEPTH'})"

    @property
    def wrap(self) -> int | None:
        """The modulus the narrowest integer cast applies to indices (256 for uint8)."""
        bits = [INT_DTYPES[c] for c in self.casts if INT_DTYPES.get(c, 64) < 32]
        return 1 << min(bits) if bits else None

    @property
    def signed_limit(self) -> int | None:
        """For a narrow signed cast (int8): indices from here on become negative (zero rows)."""
        limits = [1 << (INT_DTYPES[c] - 1) for c in self.casts if c in ("int8", "int16")]
        return min(limits) if limits else None

    def describe(self) -> str:
        if not self.one_hot:
            return f"Lambda ({self.function})"
        parts = ["one-hot Lambda"]
        if self.depth is not None:
            parts.append(f"depth {self.depth}")
        if self.casts:
            parts.append("casts to " + ", ".join(self.casts))
        text = ", ".join(parts)
        if self.certain:
            return text + " (certain from its saved code)"
        if self.does_more:
            return f"Lambda calling one_hot whose code does more ({self.why_not_certain})"
        return text + f" ({self.why_not_certain})" if self.why_not_certain else text


def recognise(config: dict) -> LambdaInfo:
    """Read a Lambda layer's config (Keras 3 ``.keras`` or Keras 2 ``.h5``) as data."""
    name = str(config.get("name", "lambda"))
    fn = config.get("function")
    arguments = config.get("arguments") or {}
    if isinstance(arguments, dict) and "config" in arguments and "class_name" in arguments:
        arguments = arguments.get("config") or {}  # Keras 3 serialises the dict itself
    if not isinstance(arguments, dict):
        arguments = {}
    code_text, fn_name, defaults, closure = None, None, None, None
    if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
        inner = fn.get("config") or {}
        if isinstance(inner, dict):  # anything else: no code to read (said below)
            code_text = inner.get("code")
            closure, defaults = inner.get("closure"), inner.get("defaults")
    elif isinstance(fn, (list, tuple)) and fn and config.get("function_type", "lambda") == "lambda":
        code_text = fn[0]
        defaults = fn[1] if len(fn) > 1 else None
        closure = fn[2] if len(fn) > 2 else None
    elif isinstance(fn, dict):  # Keras 3: a named function, stored by name only
        fn_name = str(fn.get("config", "?"))
    elif isinstance(fn, str):  # Keras 2: function_type "function"
        fn_name = fn
    info = LambdaInfo(name=name, function="lambda expression")
    if fn_name is not None:
        info.function = f"function {fn_name!r}, saved by name only"
        info.one_hot = "one_hot" in fn_name.lower() or "onehot" in fn_name.lower()
        info.why_not_certain = "its code is not in the file"
        _depth_from_config(info, config, arguments)
        return info
    try:
        code = read_base64_code(code_text)
    except UnreadableCode as exc:
        info.why_not_certain = f"its code cannot be read: {exc}"
        return info
    info.readable = True
    if code.name != "<lambda>":
        info.function = f"function {_short(code.name)}"
    info.one_hot = "one_hot" in code.names
    info.casts = [c for c in _strings(code) if c in INT_DTYPES] + [
        n for n in code.names if n in INT_DTYPES
    ]
    info.casts = list(dict.fromkeys(info.casts))
    if not info.one_hot:
        return info
    if config.get("mask") is not None:  # a mask function or value changes what flows on
        info.why_not_certain = "it also computes a mask (mask=...)"
        info.does_more = True
        _depth_from_code_or_config(info, code, config, arguments)
        return info
    tree, why = _call_tree(code)
    if tree is None:
        info.why_not_certain = why
        info.does_more = why.startswith("its code does more")
        _depth_from_code_or_config(info, code, config, arguments)
        return info
    _judge(info, tree, code, arguments, defaults, closure)
    if info.depth is None:
        _depth_from_code_or_config(info, code, config, arguments)
    return info


def _strings(code: CodeData) -> list[str]:
    return [c for c in code.consts if isinstance(c, str)]


def _depth_from_code_or_config(info, code, config, arguments) -> None:
    ints = [c for c in code.consts if isinstance(c, int) and not isinstance(c, bool) and c > 1]
    if _depth_from_arguments(info, code.parameters, arguments):
        return
    if len(ints) == 1:
        info.depth, info.depth_from = ints[0], "a constant in its code"
        return
    _depth_from_config(info, config, arguments)


def _depth_from_arguments(info, parameters, arguments) -> bool:
    for key in list(DEPTH_ARGUMENTS) + sorted(arguments):
        value = arguments.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if parameters and key not in parameters[1:]:
                continue
            info.depth, info.depth_from = value, f"its argument {key}={value}"
            return True
    return False


def _depth_from_config(info, config, arguments) -> None:
    if _depth_from_arguments(info, (), arguments):
        return
    shape = config.get("output_shape")
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[-1], int):
        info.depth, info.depth_from = int(shape[-1]), "its output shape"


# -- instructions -------------------------------------------------------------------------------


def _instructions(code: CodeData):
    """(opname, arg) pairs, or raise UnreadableCode when the writer's instructions are unknown."""
    if code.layout in (LAYOUT_36, LAYOUT_38):
        table, caches = CLASSIC_OPS, {}
    elif code.layout == LAYOUT_311 and sys.version_info >= (3, 11):
        import opcode

        table = dict(enumerate(opcode.opname))
        entries = getattr(opcode, "_inline_cache_entries", {})
        if isinstance(entries, dict):  # 3.13: by name
            caches = {opcode.opmap[n]: c for n, c in entries.items() if n in opcode.opmap}
        else:
            caches = dict(enumerate(entries))
    else:
        raise UnreadableCode(f"its code was written by Python {code.layout}")
    raw = code.code
    if len(raw) % 2:
        raise UnreadableCode("odd instruction length")
    if len(raw) > LAMBDA_MAX_BYTECODE_BYTES:
        raise UnreadableCode(
            f"its code has {len(raw)} bytes of instructions, over the "
            f"{LAMBDA_MAX_BYTECODE_BYTES} of graphkit.limits.LAMBDA_MAX_BYTECODE_BYTES"
        )
    if code.layout == LAYOUT_311:
        # 3.11+ instructions differ between releases and marshal does not say which wrote
        # them: this Python's own code starts with RESUME and keeps its caches zeroed.
        import opcode

        if not raw or raw[0] != opcode.opmap.get("RESUME"):
            raise UnreadableCode("its code was written by another Python 3.11+ release")
    out, i, ext, prefixes = [], 0, 0, 0
    while i < len(raw):
        op, arg = raw[i], raw[i + 1] | ext
        name = table.get(op, f"<{op}>")
        i += 2
        if name == "EXTENDED_ARG":
            prefixes += 1
            if prefixes > LAMBDA_MAX_EXTENDED_ARGS:
                raise UnreadableCode(
                    f"more than {LAMBDA_MAX_EXTENDED_ARGS} EXTENDED_ARG in a row "
                    "(graphkit.limits.LAMBDA_MAX_EXTENDED_ARGS)"
                )
            ext = arg << 8
            continue
        ext, prefixes = 0, 0
        if len(out) >= LAMBDA_MAX_INSTRUCTIONS:
            raise UnreadableCode(
                f"its code has more than {LAMBDA_MAX_INSTRUCTIONS} instructions "
                "(graphkit.limits.LAMBDA_MAX_INSTRUCTIONS)"
            )
        out.append((name, arg))
        skip = 2 * caches.get(op, 0)
        if code.layout == LAYOUT_311 and any(raw[i : i + skip]):
            raise UnreadableCode("its code was written by another Python 3.11+ release")
        i += skip
    return out


class _Ref:
    """A module, attribute, parameter, constant or call on the simulated stack."""

    def __init__(self, kind, value, parts=()):
        self.kind, self.value, self.parts = kind, value, parts

    def __repr__(self) -> str:
        return f"{self.kind}:{self.value}"


_MARK = _Ref("null", None)


def _call_tree(code: CodeData):
    """The call tree the code returns, or (None, why) if it does anything else."""
    if code.freevars or code.cellvars:
        return None, "it reads variables from an enclosing function"
    if code.flags & 0x0C:
        return None, "it takes *args or **kwargs"
    try:
        instructions = _instructions(code)
    except UnreadableCode as exc:
        return None, str(exc)
    stack: list[_Ref] = []
    kwnames: tuple = ()

    def pop():
        if not stack:
            raise UnreadableCode("stack underflow")
        return stack.pop()

    def call(n: int, names: tuple):
        args = [pop() for _ in range(n)][::-1]
        fn = pop()
        if stack and stack[-1] is _MARK:
            stack.pop()
        if fn is _MARK and stack:  # 3.11: NULL pushed above the callable for plain calls
            fn = pop()
        if fn.kind != "attr":
            raise UnreadableCode(f"it calls {_short(fn.value)}")
        positional = args[: len(args) - len(names)]
        keywords = dict(zip(names, args[len(args) - len(names) :]))
        ref = _Ref("call", fn.value, (positional, keywords))
        ref.callee = fn
        stack.append(ref)

    try:
        for name, arg in instructions:
            if name in ("RESUME", "NOP", "PRECALL", "CACHE"):
                continue
            if name == "PUSH_NULL":
                stack.append(_MARK)
            elif name == "LOAD_GLOBAL":
                index = arg >> 1 if code.layout == LAYOUT_311 else arg
                if code.layout == LAYOUT_311 and arg & 1:
                    stack.append(_MARK)
                stack.append(_Ref("global", code.names[index]))
            elif name in ("LOAD_ATTR", "LOAD_METHOD"):
                method = name == "LOAD_METHOD"
                index = arg
                if (
                    code.layout == LAYOUT_311
                    and sys.version_info >= (3, 12)
                    and name == "LOAD_ATTR"
                ):
                    index, method = arg >> 1, bool(arg & 1)
                base = pop()
                if base.kind not in ("global", "attr"):
                    raise UnreadableCode("it reads an attribute of a value")
                ref = _Ref("attr", code.names[index], (base,))
                if method:
                    stack.append(_MARK)
                stack.append(ref)
            elif name == "LOAD_FAST":
                stack.append(_Ref("param", code.varnames[arg]))
            elif name == "LOAD_FAST_LOAD_FAST":
                stack.append(_Ref("param", code.varnames[arg >> 4]))
                stack.append(_Ref("param", code.varnames[arg & 15]))
            elif name == "LOAD_CONST":
                stack.append(_Ref("const", code.consts[arg]))
            elif name == "KW_NAMES":
                kwnames = _keyword_names(code.consts[arg])
            elif name in ("CALL", "CALL_METHOD", "CALL_FUNCTION"):
                call(arg, kwnames)
                kwnames = ()
            elif name in ("CALL_FUNCTION_KW", "CALL_KW"):
                names = pop()
                if names.kind != "const":
                    raise UnreadableCode("bad keyword call")
                call(arg, _keyword_names(names.value))
            elif name == "RETURN_VALUE":
                result = pop()
                if stack:
                    raise UnreadableCode("values left on the stack")
                return result, ""
            else:
                return None, f"its code does more than call one_hot and cast ({name})"
    except (UnreadableCode, IndexError) as exc:
        return None, f"its code could not be followed ({exc})"
    return None, "its code never returns"


def _keyword_names(value) -> tuple:
    """A call's keyword names: a tuple of strings, or the code is not a call graphkit reads."""
    if not (isinstance(value, tuple) and all(isinstance(n, str) for n in value)):
        raise UnreadableCode("its keyword names are not a tuple of strings")
    return value


def _short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (constants can be long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _module_chain(ref: _Ref) -> bool:
    """Is ``ref`` a chain of the usual module names (``K``, ``keras.ops``, ``tf.keras.backend``)?"""
    while ref.kind == "attr":
        if ref.value not in MODULES:
            return False
        ref = ref.parts[0]
    return ref.kind == "global" and ref.value in MODULES


def _dtype(ref: _Ref) -> str | None:
    if ref.kind == "const" and isinstance(ref.value, str):
        return ref.value
    if ref.kind == "attr" and _module_chain(ref.parts[0]):
        return ref.value  # tf.uint8
    return None


def _judge(info: LambdaInfo, tree: _Ref, code, arguments, defaults, closure) -> None:
    """Is ``tree`` exactly one_hot(cast*(x), depth) (optionally cast to a float)? Fill ``info``."""
    if closure:
        info.why_not_certain = "its function reads variables from an enclosing function"
        return
    params = code.parameters
    if defaults is not None and not isinstance(defaults, (list, tuple)):
        info.why_not_certain = "its saved defaults are not a list"
        return
    defaults = list(defaults or [])
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in defaults):
        info.why_not_certain = "its function has defaults other than integers"
        return
    # a parameter with a default counts as given: ``def f(x, num_classes=30)``
    given = dict(zip(params[len(params) - len(defaults) :], defaults)) if defaults else {}
    arguments = {**given, **arguments}
    if not params or set(params[1:]) - set(arguments) or set(arguments) - set(params[1:]):
        info.why_not_certain = "its parameters are not its input and its arguments"
        return

    def called(ref: _Ref, fname: str) -> bool:
        return ref.kind == "call" and ref.value == fname

    node = tree
    if called(node, "cast"):  # one_hot(...) cast to a float dtype
        positional, keywords = node.parts
        args = positional + [keywords[k] for k in keywords if k == "dtype"]
        if len(args) != 2 or set(keywords) - {"dtype"} or _dtype(args[1]) not in FLOAT_DTYPES:
            info.why_not_certain, info.does_more = (
                "its result is cast to something other than a float dtype",
                True,
            )
            return
        node = args[0]
    if not called(node, "one_hot"):
        info.why_not_certain, info.does_more = "it does not return one_hot(...)", True
        return
    positional, keywords = node.parts
    allowed = {"num_classes", "depth", "dtype", "axis"}
    if set(keywords) - allowed or len(positional) + len(keywords) < 2:
        info.why_not_certain, info.does_more = (
            "one_hot has arguments other than the indices and the depth",
            True,
        )
        return
    indices = positional[0] if positional else keywords.get("indices")
    depth = (
        positional[1] if len(positional) > 1 else keywords.get("num_classes", keywords.get("depth"))
    )
    if len(positional) > 2:
        info.why_not_certain, info.does_more = (
            "one_hot has more than two positional arguments",
            True,
        )
        return
    axis = keywords.get("axis")
    if axis is not None and not (axis.kind == "const" and axis.value == -1):
        info.why_not_certain, info.does_more = (
            "one_hot is taken on another axis than the last",
            True,
        )
        return
    dtype = keywords.get("dtype")
    if dtype is not None and _dtype(dtype) not in FLOAT_DTYPES:
        info.why_not_certain, info.does_more = "one_hot gives a non-float dtype", True
        return
    if depth is None:
        info.why_not_certain = "one_hot has no depth"
        return
    if depth.kind == "const" and isinstance(depth.value, int) and not isinstance(depth.value, bool):
        info.depth, info.depth_from = depth.value, "a constant in its code"
    elif depth.kind == "param" and isinstance(arguments.get(depth.value), int):
        value = arguments[depth.value]
        info.depth, info.depth_from = value, f"its argument {depth.value}={value}"
    else:
        info.why_not_certain = "its depth is not an integer constant or argument"
        return
    casts = []
    while called(indices, "cast"):
        positional, keywords = indices.parts
        args = positional + [keywords[k] for k in keywords if k == "dtype"]
        if len(args) != 2 or set(keywords) - {"dtype", "x"}:
            info.why_not_certain = "a cast has unexpected arguments"
            return
        dtype = _dtype(args[1])
        if dtype not in INT_DTYPES:
            info.why_not_certain = f"its indices are cast to {dtype or 'an unknown dtype'}"
            info.does_more = dtype is not None
            return
        casts.append(dtype)
        indices = args[0]
    if not (indices.kind == "param" and indices.value == params[0]):
        info.why_not_certain, info.does_more = "one_hot is not applied to the layer's input", True
        return
    if not all(_module_chain(ref.parts[0]) for ref in _callees(tree)):
        info.why_not_certain = "it calls one_hot or cast of an unknown module"
        return
    if isinstance(info.depth, Long) or info.depth <= 0:
        info.why_not_certain = "its depth is not a positive integer"
        info.depth = None
        return
    info.casts = list(dict.fromkeys(casts[::-1]))
    info.certain = True
    info.why_not_certain = ""


def _callees(tree: _Ref):
    """The function references of every call in ``tree``."""
    out = []

    def walk(ref):
        if ref.kind == "call":
            out.append(ref.callee)
            positional, keywords = ref.parts
            for r in list(positional) + list(keywords.values()):
                walk(r)

    walk(tree)
    return out
