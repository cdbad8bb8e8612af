"""The fast JSON paths (``orjson``) give exactly what the reference encoders and the
standard library give: canonical JSON (``canonicaljson``), parsing (``json.loads``)
and the stored PDU text, on random values and on every case orjson treats otherwise."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from canonicaljson import encode_canonical_json

from homeserver.events import json_codec
from homeserver.events.canonical import canonical_json, canonical_json_size, check_strict_json
from homeserver.events.errors import EventValidationError

CHARS = [chr(i) for i in range(0x300)] + ["\u2028", "\u2029", "\ufeff", "\U0001f600", "é"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6)))
    if roll < 0.45:
        return rng.randint(-(2**53) + 1, 2**53 - 1)
    if roll < 0.5:
        return rng.choice([True, False, None])
    if roll < 0.75:
        return {
            random_value(rng, 9): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))
        }
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def test_canonical_json_is_canonicaljson_on_random_values() -> None:
    rng = random.Random(20)
    for _ in range(3000):
        value = {"content": random_value(rng), "type": random_value(rng, 9)}
        assert canonical_json(value) == encode_canonical_json(value)
        assert canonical_json_size(value) == len(encode_canonical_json(value))


@pytest.mark.parametrize(
    "value",
    [
        {"float": 1.5},
        {"big": 2**53},
        {"huge": 2**70},
        {"exp": 1e16, "small": 1e-7},
        {"keys": {"b": 1, "a": 2, "é": 3, "\U0001f600": 4, "Z": 5}},
        {1: "int key"},
        ("tuple", "is a list"),
    ],
)
def test_canonical_json_of_what_orjson_writes_otherwise(value: Any) -> None:
    assert canonical_json(value) == encode_canonical_json(value)
    assert canonical_json_size(value) == len(encode_canonical_json(value))


def test_canonical_json_refuses_what_canonicaljson_refuses() -> None:
    for value in ({"nan": float("nan")}, {"surrogate": "\ud800"}):
        with pytest.raises((ValueError, UnicodeEncodeError)):
            encode_canonical_json(value)
        with pytest.raises((ValueError, UnicodeEncodeError)):
            canonical_json(value)


@pytest.mark.parametrize(
    "raw",
    [
        '{"a": 1, "a": 2}',
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        '{"n": 9223372036854775807, "m": -9223372036854775808}',
        '["\\ud800"]',
        "1e400",
        '{"f": 1.5e16, "g": -0.0, "h": 1E5}',
        '"1234567890123456789012345 digits in a string"',
        '  {"ws": [ ]}  ',
        '{"\u00e9t\u00e9": "\u00e9", "n": 123456789012345678901234567890}',
        '{"café": [1234567890123456789012, "éé"]}',
        '{"ts": 1733600000000, "n18": 999999999999999999, "neg": -999999999999999999}',
        '"' + "\uff11\uff12\uff13" * 7 + '"',  # fullwidth digits are no digits
        "[12345678901234567890.5, 1e-400]",
    ],
)
def test_loads_is_json_loads(raw: str) -> None:
    expected = json.loads(raw)
    for form in (raw, raw.encode()):
        got = json_codec.loads(form)
        assert got == expected or (got != got and expected != expected)
        assert json.dumps(got) == json.dumps(expected)  # the same types too


@pytest.mark.parametrize("raw", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_loads_refuses_constants_when_asked(raw: str) -> None:
    assert json.dumps(json_codec.loads(raw)) == json.dumps(json.loads(raw))
    with pytest.raises(ValueError):
        json_codec.loads(raw, strict=True)


@pytest.mark.parametrize("raw", ["", "{", '{"a": }', b"\xff\xfe", "[1,]"])
def test_loads_refuses_what_is_not_json(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        json_codec.loads(raw)


def test_strict_check_names_the_offending_value() -> None:
    check_strict_json({"content": {"list": [1, "a", None, True, {"x": 2**53 - 1}]}})
    with pytest.raises(EventValidationError, match=r"float value at \.content\.list\[1\]"):
        check_strict_json({"content": {"list": [1, 2.5]}})
    with pytest.raises(EventValidationError, match=r"out of canonical range at \.content\.n"):
        check_strict_json({"content": {"n": 2**53}})
