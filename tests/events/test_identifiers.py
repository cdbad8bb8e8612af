"""Identifiers by the appendix grammar."""

from __future__ import annotations

import pytest

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    EventID,
    InvalidIdentifier,
    RoomAlias,
    RoomID,
    UserID,
    is_valid_server_name,
    is_valid_user_id,
    split_server_name,
)


@pytest.mark.parametrize(
    ("name", "host", "port"),
    [
        ("matrix.org", "matrix.org", None),
        ("matrix.org:8888", "matrix.org", 8888),
        ("1.2.3.4", "1.2.3.4", None),
        ("1.2.3.4:1234", "1.2.3.4", 1234),
        ("[1234:5678::abcd]", "[1234:5678::abcd]", None),
        ("[1234:5678::abcd]:5678", "[1234:5678::abcd]", 5678),
        ("localhost", "localhost", None),
    ],
)
def test_valid_server_names(name: str, host: str, port: int | None) -> None:
    assert split_server_name(name) == (host, port)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "matrix.org:",
        "matrix.org:123456",
        "matrix.org:port",
        "exa_mple.org",
        "1.2.3.256",
        "[1234:5678::abcd",
        "[1234:5678::abcd]x",
        "[not-ipv6]",
        "[::1%eth0]",
        "a" * 256,
        "host name",
    ],
)
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


def test_user_ids_strict_and_historical() -> None:
    assert UserID.parse("@alice:example.org", strict=True) == UserID("alice", "example.org")
    assert str(UserID.parse("@a.b_c=d-e/f+g:example.org:8448")) == "@a.b_c=d-e/f+g:example.org:8448"
    for historical in ("@Alice:example.org", "@:example.org", "@caf\u00e9:example.org", "@a b:x"):
        assert is_valid_user_id(historical)
        assert not is_valid_user_id(historical, strict=True)
    assert not UserID.parse("@Alice:example.org").is_compliant
    for bad in ("alice:example.org", "@alice", "@alice:", "@a\x00b:x", "@alice:bad_host"):
        with pytest.raises(InvalidIdentifier):
            UserID.parse(bad)
    with pytest.raises(InvalidIdentifier):
        UserID.parse("@" + "a" * 250 + ":example.org")


def test_room_ids() -> None:
    assert RoomID.parse("!abc:example.org") == RoomID("abc", "example.org")
    hashed = "!" + "A" * 42 + "-"
    assert RoomID.parse(hashed, KNOWN_ROOM_VERSIONS["12"]).domain is None
    with pytest.raises(InvalidIdentifier):
        RoomID.parse(hashed, KNOWN_ROOM_VERSIONS["11"])
    with pytest.raises(InvalidIdentifier):
        RoomID.parse("!abc:example.org", KNOWN_ROOM_VERSIONS["12"])
    for bad in ("abc:example.org", "!:example.org", "!short", "!abc:bad_host"):
        with pytest.raises(InvalidIdentifier):
            RoomID.parse(bad)


def test_event_ids_per_format() -> None:
    v1, v3, v4 = (KNOWN_ROOM_VERSIONS[v] for v in ("1", "3", "4"))
    assert EventID.parse("$abc:example.org", v1).domain == "example.org"
    std = "$" + "a+/" * 14 + "b"
    url = "$" + "a-_" * 14 + "b"
    assert EventID.parse(std, v3).opaque == std[1:]
    assert EventID.parse(url, v4).opaque == url[1:]
    with pytest.raises(InvalidIdentifier):
        EventID.parse(url, v3)
    with pytest.raises(InvalidIdentifier):
        EventID.parse(std, v4)
    with pytest.raises(InvalidIdentifier):
        EventID.parse("$abc", v1)
    with pytest.raises(InvalidIdentifier):
        EventID.parse("abc:example.org")


def test_room_aliases() -> None:
    assert RoomAlias.parse("#room:example.org") == RoomAlias("room", "example.org")
    assert str(RoomAlias.parse("#caf\u00e9:example.org")) == "#caf\u00e9:example.org"
    for bad in ("room:example.org", "#room", "#:example.org", "#a\x00:x"):
        with pytest.raises(InvalidIdentifier):
            RoomAlias.parse(bad)
