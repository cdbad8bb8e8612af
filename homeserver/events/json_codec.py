"""Compact JSON for responses and storage, from a fast encoder (orjson) where it is
installed: NOT canonical JSON (that is :mod:`.canonical`, for hashes and signatures).

The output is what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``
gives (keys in insertion order, non-ASCII characters as themselves) except for the
spelling of floats (``1e16`` for ``1e+16``), which is the same number. Values orjson
refuses (integers beyond 64 bits, non-string keys, strings with lone surrogates)
go through the standard library instead, exactly as before; so do texts orjson
cannot parse, so every input the standard library accepts still parses the same.
"""

from __future__ import annotations

import json
from typing import Any

orjson: Any
try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; this is the fallback
    orjson = None


def _stdlib_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def dumps_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``."""
    if orjson is not None:
        try:
            encoded: bytes = orjson.dumps(value)
            return encoded
        except TypeError:  # orjson.JSONEncodeError: too big an int, a non-str key...
            pass
    return _stdlib_dumps(value).encode("utf-8")


def dumps_text(value: Any) -> str:
    """Compact JSON of ``value`` as text (for a TEXT column)."""
    if orjson is not None:
        try:
            text: str = orjson.dumps(value).decode("utf-8")
            return text
        except TypeError:
            pass
    return _stdlib_dumps(value)


# orjson reads an integer beyond 64 bits as a float: a text with a run of 19 digits
# or more (in a number or not) is left to the standard library, which keeps it exact.
# The run is found by mapping every ASCII digit to "0" and every other byte to " "
# and searching for nineteen "0"s: two passes in C over the text, where a regular
# expression tried a match at every digit (it took longer than orjson's parse of a
# big send_join answer). UTF-8 encodes no other character with a digit's byte.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 19


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


def _has_long_digits(raw: str | bytes) -> bool:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return raw.translate(_DIGITS_AS_ZEROS).find(_LONG_DIGITS) != -1


def loads(raw: str | bytes, *, strict: bool = False) -> Any:
    """Parse JSON as ``json.loads`` does. Texts orjson refuses or would read
    differently (integers beyond 64 bits, lone surrogate escapes, NaN) are parsed
    by ``json.loads``, whose errors are raised. ``strict``: NaN, Infinity and
    -Infinity are refused (ValueError), as request bodies must be."""
    if orjson is not None and not _has_long_digits(raw):
        try:
            return orjson.loads(raw)
        except ValueError:  # orjson.JSONDecodeError
            pass
    if strict:
        return json.loads(raw, parse_constant=_reject_constant)
    return json.loads(raw)
