"""Fast JSON decoding (``orjson``) with the standard library's exact behaviour.

``orjson`` parses several times faster than :mod:`json`; it refuses a few inputs the
standard library takes (lone surrogate escapes, numbers out of a double's range) and
reads integers beyond 64 bits as floats. Those inputs (any run of 19 digits, even in
a string, may be such an integer) go to :func:`json.loads`, so the result is always
what :func:`json.loads` gives: the fast path changes the speed, never the outcome.
``NaN`` and ``Infinity`` (not JSON) are refused on both paths when
``reject_constants`` is set.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# an integer literal of fewer than 19 digits fits orjson's 64-bit integers
_LONG_DIGITS_STR = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


def loads(raw: bytes | str, *, reject_constants: bool = False) -> Any:
    """Parse ``raw`` (``ValueError`` when it is not JSON, or is not UTF-8)."""
    long_digits = _LONG_DIGITS_STR if isinstance(raw, str) else _LONG_DIGITS_BYTES
    if long_digits.search(raw) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # maybe what only the standard library takes: it decides
    if reject_constants:
        return json.loads(raw, parse_constant=_reject_constant)
    return json.loads(raw)
