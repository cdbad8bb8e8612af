"""Canonical JSON and unpadded base64 (spec: appendices "Canonical JSON", "Unpadded Base64").

Encoding uses the ``canonicaljson`` package. :func:`check_strict_json` enforces the
value restrictions that room versions 6+ apply to received events (integers in
``[-(2**53)+1, (2**53)-1]``, no floats).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from canonicaljson import encode_canonical_json

from .errors import EventValidationError

CANONICAL_INT_MIN = -(2**53) + 1
CANONICAL_INT_MAX = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes (appendices "Canonical JSON").

    Plain JSON values without floats or big integers (nearly every event) are
    encoded by ``orjson`` with sorted keys: the same bytes as ``canonicaljson``'s
    (the same escapes, UTF-8, keys in code point order), several times faster.
    Anything else, and whatever ``orjson`` refuses (lone surrogates), is left to
    ``canonicaljson``.
    """
    if plainly_strict_json(value):
        try:
            encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
        else:
            # a copy of the exact size: orjson's own result keeps kilobytes of spare
            # room, and events keep these bytes (tens of thousands for a big room)
            return bytes(memoryview(encoded))
    return encode_canonical_json(value)


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded base64, standard or URL-safe alphabet (appendices "Unpadded Base64")."""
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.rstrip(b"=").decode("ascii")


def decode_base64(text: str) -> bytes:
    """Decode base64 with or without padding, in either alphabet.

    The spec says implementations SHOULD accept padded and unpadded input.
    Raises ``ValueError`` on malformed input.
    """
    if not isinstance(text, str):
        raise ValueError("base64 value is not a string")
    stripped = text.rstrip("=")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        if "-" in padded or "_" in padded:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid base64: {exc}") from exc


def check_strict_json(value: Any, path: str = "") -> None:
    """Raise :class:`EventValidationError` if ``value`` breaks strict canonical JSON.

    Spec: rooms v6 "Canonical JSON" (strict enforcement) and appendices: numbers must
    be integers within ``[-(2**53)+1, (2**53)-1]``; floats are not permitted.
    """
    if plainly_strict_json(value):
        return
    _find_strict_error(value, path)


def canonical_json_size(value: Any) -> int:
    """``len(canonical_json(value))``; for a plain value the key order does not change
    the length, so ``orjson`` need not sort."""
    if plainly_strict_json(value):
        try:
            return len(orjson.dumps(value))
        except orjson.JSONEncodeError:
            pass
    return len(encode_canonical_json(value))


def plainly_strict_json(value: Any) -> bool:
    """Whether ``value`` is plain decoded JSON (dicts, lists, strings, booleans, None
    and integers) with every integer in range: the common case, checked without
    building the paths that an error message needs. False also for any other type,
    left to :func:`_find_strict_error` to judge."""
    stack = [value]
    pop = stack.pop
    push = stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            for sub in item.values():
                if type(sub) is not str:
                    push(sub)
        elif kind is list:
            for sub in item:
                if type(sub) is not str:
                    push(sub)
        elif kind is int:
            if not CANONICAL_INT_MIN <= item <= CANONICAL_INT_MAX:
                return False
        elif kind is not str and kind is not bool and item is not None:
            return False
    return True


def _find_strict_error(value: Any, path: str) -> None:
    """:func:`check_strict_json` with the path of the offending value in the error."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(sub, (dict, list, int, float)):
                    stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, list):
            for i, sub in enumerate(item):
                if isinstance(sub, (dict, list, int, float)):
                    stack.append((sub, f"{where}[{i}]"))
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not CANONICAL_INT_MIN <= item <= CANONICAL_INT_MAX:
                raise EventValidationError(f"integer out of canonical range at {where or '.'}")
        elif isinstance(item, float):
            raise EventValidationError(f"float value at {where or '.'}")
