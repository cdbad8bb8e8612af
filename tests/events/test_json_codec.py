"""The compact JSON codec (responses, stored events): the same text and values as the
standard library's compact JSON, whichever encoder runs."""

from __future__ import annotations

import json
import math

import pytest

from homeserver.events.json_codec import dumps_bytes, dumps_text, loads


def stdlib(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


SAME_TEXT = [
    {"a": 1, "b": [True, False, None], "c": {"nested": "x"}},
    {"z": 1, "a": 2, "m": 3},  # insertion order kept, not sorted
    {"text": 'quote " backslash \\ newline \n tab \t bell \x07 del \x7f'},
    {"unicode": "é ü 日本 😀 \u2028 \u2029"},
    [0, -1, 2**53, -(2**53), 2**63 - 1, -(2**63)],
    [1.5, -0.0, 0.1, 1e300],
    {"": ""},
    [],
    {},
]


@pytest.mark.parametrize("value", SAME_TEXT)
def test_dumps_matches_the_standard_library(value: object) -> None:
    assert dumps_text(value) == stdlib(value)
    assert dumps_bytes(value) == stdlib(value).encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        {"big": 2**70},  # beyond 64 bits: room versions 1-5 allow any integer
        {"negative": -(2**70)},
        {1: "non-string key"},
    ],
)
def test_values_the_fast_encoder_refuses_are_encoded_as_before(value: object) -> None:
    assert dumps_text(value) == stdlib(value)
    assert dumps_bytes(value) == stdlib(value).encode("utf-8")


def test_lone_surrogate_fails_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        dumps_bytes({"bad": "\ud800"})
    assert dumps_text({"bad": "\ud800"}) == stdlib({"bad": "\ud800"})


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"b":[true,false,null],"c":{"d":"é"}}',
        '{"a":1,"a":2}',  # the last duplicate wins
        "[9223372036854775807,-9223372036854775808,1.0000000000000002]",
        '"\\u00e9\\ud83d\\ude00"',
        " [1, 2] ",
    ],
)
def test_loads_matches_the_standard_library(text: str) -> None:
    assert loads(text) == json.loads(text)
    assert loads(text.encode("utf-8")) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890123",  # an integer beyond 64 bits stays exact
        '{"n":-12345678901234567890123}',
        '{"s":"\\ud800"}',  # a lone surrogate escape
    ],
)
def test_loads_keeps_what_the_fast_decoder_would_change_or_refuse(text: str) -> None:
    value = loads(text)
    assert value == json.loads(text)
    assert type(value) is type(json.loads(text))
    assert loads(text.encode("utf-8")) == json.loads(text)


def test_constants_are_read_unless_strict() -> None:
    assert math.isnan(loads("[NaN]")[0])
    assert loads("[Infinity]") == [math.inf]
    for text in ("[NaN]", "[Infinity]", "[-Infinity]", b"NaN"):
        with pytest.raises(ValueError):
            loads(text, strict=True)


@pytest.mark.parametrize("text", ["", "{", '{"a":}', "[1,]", "nul", b"\xff\xfe"])
def test_invalid_json_raises_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads(text)
    with pytest.raises(ValueError):
        loads(text, strict=True)
