"""Plain data across the sandbox wall: None, bool, int, float, complex, str, bytes, list, tuple, dict,
set and frozenset, in a small tagged binary format.

The untrusted side encodes what a candidate returned; the judge decodes it into fresh built-in objects
without executing anything, so no object of the program's own (an `__eq__` that always answers True,
a subclass, a proxy) reaches a comparison. Subclasses of the built-in types (a namedtuple, Counter,
IntEnum) cross as their base type, since equality of the base value is what a check means. Standard
library only: the sandbox server imports this module by itself.
"""

from __future__ import annotations

import struct

MAX_DEPTH = 100
_DOUBLE = struct.Struct("<d")
_LEN = struct.Struct("<I")


class NotPlainData(TypeError):
    """The value holds something other than plain data (named in the message)."""


def encode(value) -> bytes:
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def _encode(value, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH}")
    if value is None:
        out += b"N"
    elif value is True or value is False:
        out += b"T" if value else b"F"
    elif isinstance(value, int):
        raw = int.__index__(value)
        body = raw.to_bytes((raw.bit_length() + 8) // 8, "little", signed=True)
        out += b"i" + _LEN.pack(len(body)) + body
    elif isinstance(value, float):
        out += b"f" + _DOUBLE.pack(float.__float__(value))
    elif isinstance(value, complex):
        c = complex.__complex__(value)
        out += b"c" + _DOUBLE.pack(c.real) + _DOUBLE.pack(c.imag)
    elif isinstance(value, str):
        body = str.__str__(value).encode("utf-8", "surrogatepass")
        out += b"s" + _LEN.pack(len(body)) + body
    elif isinstance(value, (bytes, bytearray)):
        body = bytes(value)
        out += b"b" + _LEN.pack(len(body)) + body
    elif isinstance(value, (list, tuple, set, frozenset)):
        if isinstance(value, list):  # each through its base type's own iterator
            tag, items = b"l", list(list.__iter__(value))
        elif isinstance(value, tuple):
            tag, items = b"t", list(tuple.__iter__(value))
        elif isinstance(value, set):
            tag, items = b"S", list(set.__iter__(value))
        else:
            tag, items = b"Z", list(frozenset.__iter__(value))
        out += tag + _LEN.pack(len(items))
        for item in items:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        items = list(dict.items(value))
        out += b"d" + _LEN.pack(len(items))
        for k, v in items:
            _encode(k, out, depth + 1)
            _encode(v, out, depth + 1)
    else:
        raise NotPlainData(f"a {type(value).__name__!s:.60} is not plain data")


def decode(data: bytes):
    """The value `encode` wrote; ValueError for anything malformed (never executes or imports)."""
    value, end = _decode(memoryview(data), 0, 0)
    if end != len(data):
        raise ValueError("trailing bytes after the value")
    return value


def _length(view, pos: int) -> tuple[int, int]:
    if pos + 4 > len(view):
        raise ValueError("truncated length")
    return _LEN.unpack_from(view, pos)[0], pos + 4


def _decode(view, pos: int, depth: int):
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if pos >= len(view):
        raise ValueError("truncated value")
    tag = view[pos]
    pos += 1
    if tag == 0x4E:  # N
        return None, pos
    if tag == 0x54:  # T
        return True, pos
    if tag == 0x46:  # F
        return False, pos
    if tag == 0x66:  # f
        if pos + 8 > len(view):
            raise ValueError("truncated float")
        return _DOUBLE.unpack_from(view, pos)[0], pos + 8
    if tag == 0x63:  # c
        if pos + 16 > len(view):
            raise ValueError("truncated complex")
        return complex(_DOUBLE.unpack_from(view, pos)[0], _DOUBLE.unpack_from(view, pos + 8)[0]), pos + 16
    if tag in (0x69, 0x73, 0x62):  # i, s, b
        n, pos = _length(view, pos)
        if pos + n > len(view):
            raise ValueError("truncated body")
        body = bytes(view[pos:pos + n])
        if tag == 0x69:
            return int.from_bytes(body, "little", signed=True), pos + n
        if tag == 0x73:
            return body.decode("utf-8", "surrogatepass"), pos + n
        return body, pos + n
    if tag in (0x6C, 0x74, 0x53, 0x5A):  # l, t, S, Z
        n, pos = _length(view, pos)
        if n > len(view) - pos:  # every item takes at least one byte
            raise ValueError("container longer than the data")
        items = []
        for _ in range(n):
            item, pos = _decode(view, pos, depth + 1)
            items.append(item)
        try:
            return {0x6C: list, 0x74: tuple, 0x53: set, 0x5A: frozenset}[tag](items), pos
        except TypeError as exc:  # an unhashable member of a set
            raise ValueError(str(exc)) from None
    if tag == 0x64:  # d
        n, pos = _length(view, pos)
        if 2 * n > len(view) - pos:
            raise ValueError("dict longer than the data")
        out = {}
        for _ in range(n):
            key, pos = _decode(view, pos, depth + 1)
            value, pos = _decode(view, pos, depth + 1)
            try:
                out[key] = value
            except TypeError as exc:
                raise ValueError(str(exc)) from None
        return out, pos
    raise ValueError(f"unknown tag {tag!r}")
