"""Read a marshalled Python code object as plain data, without ``marshal.loads``.

A Lambda layer's saved function is ``marshal.dumps(func.__code__)``, base64-encoded. Loading it
with ``marshal.loads`` builds a code object, the first step to running it. graphkit needs only
to *look* at it: its names, constants, parameters and instructions. This module parses the
marshal format into tuples, strings, numbers and ``CodeData`` records, and nothing else: no
code object, no import, no call. Anything it does not know (a format of a Python it has never
seen, a truncated or hostile byte string) is an ``UnreadableCode`` error, never a guess.

The marshal format is documented in CPython's ``Python/marshal.c``. Code objects are laid out
in three ways, told apart by parsing: Python 3.6-3.7 (five counts), 3.8-3.10 (six counts:
positional-only arguments were added), 3.11-3.13 (five counts, ``co_localsplusnames``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from graphkit.limits import (
    LAMBDA_MAX_EXPANDED_SIZE,
    LAMBDA_MAX_MARSHAL_BYTES,
    LAMBDA_MAX_NESTING,
)

MAX_BYTES = LAMBDA_MAX_MARSHAL_BYTES
MAX_DEPTH = LAMBDA_MAX_NESTING
FLAG_REF = 0x80

# layouts: which Python versions wrote the code object (what its instructions mean depends on it)
LAYOUT_36 = "3.6-3.7"
LAYOUT_38 = "3.8-3.10"
LAYOUT_311 = "3.11+"
LAYOUTS = (LAYOUT_311, LAYOUT_38, LAYOUT_36)


class UnreadableCode(ValueError):
    """The bytes are not a marshalled code object that this reader understands."""


@dataclass(frozen=True)
class CodeData:
    """The parts of a code object graphkit looks at (all plain data)."""

    layout: str
    argcount: int
    posonlyargcount: int
    kwonlyargcount: int
    flags: int
    code: bytes
    consts: tuple
    names: tuple
    varnames: tuple  # parameters first, then other locals
    freevars: tuple
    cellvars: tuple
    name: str

    @property
    def parameters(self) -> tuple:
        n = self.argcount + self.kwonlyargcount
        if self.flags & 0x04:  # *args
            n += 1
        if self.flags & 0x08:  # **kwargs
            n += 1
        return tuple(self.varnames[:n])


@dataclass(frozen=True)
class Long:
    """A marshalled int too large for 32 bits (kept as its value)."""

    value: int


class _Null:
    def __repr__(self) -> str:
        return "NULL"


NULL = _Null()


class _Reader:
    def __init__(self, data: bytes, layout: str):
        self.data = data
        self.pos = 0
        self.layout = layout
        self.refs: list = []
        self.depth = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise UnreadableCode("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def long(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def size(self) -> int:
        n = self.long()
        if n < 0 or n > len(self.data) - self.pos + 1:
            raise UnreadableCode("bad size")
        return n

    def reserve(self, flag: bool) -> int | None:
        if not flag:
            return None
        self.refs.append(None)
        return len(self.refs) - 1

    def set_ref(self, index: int | None, value):
        if index is not None:
            self.refs[index] = value
        return value

    def obj(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise UnreadableCode(
                f"nested more than {MAX_DEPTH} levels deep (graphkit.limits.LAMBDA_MAX_NESTING)"
            )
        try:
            return self._obj()
        finally:
            self.depth -= 1

    def _obj(self):
        code = self.byte()
        flag = bool(code & FLAG_REF)
        kind = chr(code & ~FLAG_REF)
        simple = {"0": NULL, "N": None, "F": False, "T": True, "S": StopIteration, ".": Ellipsis}
        if kind in simple:
            return simple[kind]
        if kind == "r":
            index = self.long()
            if not 0 <= index < len(self.refs) or self.refs[index] is None:
                raise UnreadableCode("bad reference")
            return self.refs[index]
        ref = self.reserve(flag)
        if kind == "i":
            return self.set_ref(ref, self.long())
        if kind == "l":
            n = self.long()
            if abs(n) > 1000:
                raise UnreadableCode("integer too long")
            digits = [struct.unpack("<H", self.take(2))[0] for _ in range(abs(n))]
            value = sum(d << (15 * i) for i, d in enumerate(digits))
            return self.set_ref(ref, Long(-value if n < 0 else value))
        if kind == "g":
            return self.set_ref(ref, struct.unpack("<d", self.take(8))[0])
        if kind == "y":
            return self.set_ref(ref, complex(*struct.unpack("<dd", self.take(16))))
        if kind in "fx":
            raise UnreadableCode("text-format float")  # marshal version < 2: never in Python 3
        if kind == "s":
            return self.set_ref(ref, bytes(self.take(self.size())))
        if kind in "tuaA":
            raw = self.take(self.size())
            return self.set_ref(ref, self._text(raw, "utf-8" if kind in "tu" else "latin-1"))
        if kind in "zZ":
            return self.set_ref(ref, self._text(self.take(self.byte()), "latin-1"))
        if kind in "([<>":
            n = self.size()
            items = [self.obj() for _ in range(n)]
            return self.set_ref(ref, tuple(items))
        if kind == ")":
            n = self.byte()
            items = [self.obj() for _ in range(n)]
            return self.set_ref(ref, tuple(items))
        if kind == "{":
            pairs = []
            while True:
                key = self.obj()
                if key is NULL:
                    break
                pairs.append((key, self.obj()))
            return self.set_ref(ref, tuple(pairs))
        if kind == "c":
            return self.set_ref(ref, self._code())
        raise UnreadableCode(f"unknown marshal type {kind!r}")

    @staticmethod
    def _text(raw: bytes, encoding: str) -> str:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise UnreadableCode("bad text") from exc

    def _code(self) -> CodeData:
        if self.layout == LAYOUT_311:
            argcount, posonly, kwonly, _stack, flags = (self.long() for _ in range(5))
            code, consts, names = self.obj(), self.obj(), self.obj()
            localsplus, kinds = self.obj(), self.obj()
            _filename, name, qualname = self.obj(), self.obj(), self.obj()
            self.long()  # first line
            _linetable, _exceptions = self.obj(), self.obj()
            if not (isinstance(kinds, bytes) and isinstance(qualname, str)):
                raise UnreadableCode("not a 3.11+ code object")
            if not (isinstance(localsplus, tuple) and len(kinds) == len(localsplus)):
                raise UnreadableCode("not a 3.11+ code object")
            # kinds: 0x20 local, 0x40 cell, 0x80 free (CPython's CO_FAST_*)
            varnames = tuple(n for n, k in zip(localsplus, kinds) if k & 0x20)
            cellvars = tuple(n for n, k in zip(localsplus, kinds) if k & 0x40)
            freevars = tuple(n for n, k in zip(localsplus, kinds) if k & 0x80)
        else:
            counts = 6 if self.layout == LAYOUT_38 else 5
            values = [self.long() for _ in range(counts)]
            if counts == 6:
                argcount, posonly, kwonly, _nlocals, _stack, flags = values
            else:
                argcount, kwonly, _nlocals, _stack, flags = values
                posonly = 0
            code, consts, names = self.obj(), self.obj(), self.obj()
            varnames, freevars, cellvars = self.obj(), self.obj(), self.obj()
            _filename, name = self.obj(), self.obj()
            self.long()  # first line
            _lnotab = self.obj()
        fields = (code, consts, names, varnames, freevars, cellvars, name)
        types = (bytes, tuple, tuple, tuple, tuple, tuple, str)
        if not all(isinstance(v, t) for v, t in zip(fields, types)):
            raise UnreadableCode(f"not a {self.layout} code object")
        if not all(isinstance(n, str) for n in names + varnames + freevars + cellvars):
            raise UnreadableCode(f"not a {self.layout} code object")
        if min(argcount, posonly, kwonly) < 0 or argcount + kwonly > len(varnames):
            raise UnreadableCode(f"not a {self.layout} code object")
        return CodeData(
            layout=self.layout,
            argcount=argcount,
            posonlyargcount=posonly,
            kwonlyargcount=kwonly,
            flags=flags,
            code=code,
            consts=consts,
            names=names,
            varnames=varnames,
            freevars=freevars,
            cellvars=cellvars,
            name=name,
        )


def read_code(data: bytes) -> CodeData:
    """The code object marshalled in ``data``, as data. Raises UnreadableCode."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnreadableCode("not bytes")
    if len(data) > MAX_BYTES:
        raise UnreadableCode(
            f"{len(data)} bytes, over the {MAX_BYTES} of graphkit.limits.LAMBDA_MAX_MARSHAL_BYTES"
        )
    if not data or (data[0] & ~FLAG_REF) != ord("c"):
        raise UnreadableCode("not a code object")
    errors = []
    for layout in LAYOUTS:
        reader = _Reader(bytes(data), layout)
        try:
            found = reader.obj()
        except (UnreadableCode, struct.error, RecursionError) as exc:
            errors.append(str(exc))
            continue
        if reader.pos == len(data) and isinstance(found, CodeData):
            # checked before anything hashes, compares or prints its constants
            check_expanded_size(found)
            return found
        errors.append("trailing bytes")
    raise UnreadableCode("not a code object of Python 3.6-3.13 (" + "; ".join(errors) + ")")


def check_expanded_size(code: CodeData, limit: int = LAMBDA_MAX_EXPANDED_SIZE) -> int:
    """The size of ``code`` with shared objects counted each time they are used; raise
    UnreadableCode past ``limit``. Marshal's back-references let a few hundred bytes hold a
    tuple that is 2^60 items deep in use (each level twice the one below): hashing it (a
    keyword-name tuple becomes dict keys), comparing or printing it would never end. Each
    distinct object is weighed once (by identity), so this is linear in the bytes read."""
    sizes: dict[int, int] = {}

    def size(value) -> int:
        known = sizes.get(id(value))
        if known is not None:
            return known
        if isinstance(value, CodeData):
            parts = (value.code, value.consts, value.names, value.varnames)
            parts += (value.freevars, value.cellvars, value.name)
        elif isinstance(value, tuple):
            parts = value
        else:
            parts = ()
        total = 1 + (len(value) if isinstance(value, (str, bytes)) else 0)
        for part in parts:
            total += size(part)
            if total > limit:
                raise UnreadableCode(
                    f"its constants expand to more than {limit} items when shared ones are "
                    "counted each time they are used (graphkit.limits.LAMBDA_MAX_EXPANDED_SIZE)"
                )
        sizes[id(value)] = total
        return total

    return size(code)


def read_base64_code(text: str) -> CodeData:
    """``read_code`` of a Lambda config's base64 ``code`` string."""
    import base64
    import binascii

    if not isinstance(text, str):
        raise UnreadableCode("the function's code is not a string")
    if len(text) > 4 * (MAX_BYTES // 3 + 1) + 64:  # base64 plus line breaks
        raise UnreadableCode(
            f"{len(text)} characters of base64, over the {MAX_BYTES} bytes of "
            "graphkit.limits.LAMBDA_MAX_MARSHAL_BYTES"
        )
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise UnreadableCode("the function's code is not base64") from exc
    return read_code(raw)
