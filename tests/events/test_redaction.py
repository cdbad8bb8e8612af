"""The redaction algorithm of each room version (rooms ``*-redactions`` fragments)."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.events import KNOWN_ROOM_VERSIONS, redact

V = KNOWN_ROOM_VERSIONS
OLD = [V[str(i)] for i in range(1, 6)]
V6_7 = [V["6"], V["7"]]
V9_10 = [V["9"], V["10"]]
NEW = [V["11"], V["12"]]


def _event(event_type: str, content: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "content": content,
        "room_id": "!r:x",
        "sender": "@u:x",
        "state_key": "",
        "event_id": "$e:x",
        "hashes": {"sha256": "abc"},
        "signatures": {"x": {"ed25519:1": "sig"}},
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
        "origin_server_ts": 1,
        "origin": "x",
        "membership": "join",
        "prev_state": [],
        "unsigned": {"age": 1},
        "custom": 1,
        **top,
    }


@pytest.mark.parametrize("rv", OLD + V6_7 + [V["8"]] + V9_10)
def test_top_level_keys_before_v11(rv: Any) -> None:
    out = redact(_event("m.room.message", {"body": "x"}), rv)
    assert {"origin", "membership", "prev_state"} <= out.keys()
    assert "unsigned" not in out and "custom" not in out
    assert out["content"] == {}


@pytest.mark.parametrize("rv", NEW)
def test_top_level_keys_from_v11(rv: Any) -> None:
    out = redact(_event("m.room.message", {"body": "x"}), rv)
    assert not {"origin", "membership", "prev_state", "unsigned", "custom"} & out.keys()
    assert {"event_id", "type", "room_id", "sender", "state_key", "hashes", "signatures"} <= (
        out.keys()
    )
    assert {"depth", "prev_events", "auth_events", "origin_server_ts", "content"} <= out.keys()


MEMBER = {
    "membership": "join",
    "displayname": "U",
    "join_authorised_via_users_server": "@a:x",
    "third_party_invite": {"display_name": "d", "signed": {"mxid": "@u:x", "token": "t"}},
}


@pytest.mark.parametrize(
    ("rvs", "expected"),
    [
        (OLD + V6_7 + [V["8"]], {"membership": "join"}),
        (V9_10, {"membership": "join", "join_authorised_via_users_server": "@a:x"}),
        (
            NEW,
            {
                "membership": "join",
                "join_authorised_via_users_server": "@a:x",
                "third_party_invite": {"signed": {"mxid": "@u:x", "token": "t"}},
            },
        ),
    ],
)
def test_member(rvs: list[Any], expected: dict[str, Any]) -> None:
    for rv in rvs:
        assert redact(_event("m.room.member", MEMBER), rv)["content"] == expected, rv


CREATE = {"creator": "@u:x", "room_version": "1", "m.federate": False}


def test_create() -> None:
    for rv in OLD + V6_7 + [V["8"]] + V9_10:
        assert redact(_event("m.room.create", CREATE), rv)["content"] == {"creator": "@u:x"}
    for rv in NEW:
        assert redact(_event("m.room.create", CREATE), rv)["content"] == CREATE


JOIN_RULES = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1}


def test_join_rules() -> None:
    for rv in OLD + V6_7:
        assert redact(_event("m.room.join_rules", JOIN_RULES), rv)["content"] == {
            "join_rule": "restricted"
        }
    for rv in [V["8"], *V9_10, *NEW]:
        expected = {k: JOIN_RULES[k] for k in ("join_rule", "allow")}
        assert redact(_event("m.room.join_rules", JOIN_RULES), rv)["content"] == expected


PL = {
    "ban": 50,
    "events": {},
    "events_default": 0,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {},
    "users_default": 0,
    "invite": 0,
    "notifications": {"room": 50},
}


def test_power_levels() -> None:
    for rv in OLD + V6_7 + [V["8"]] + V9_10:
        out = redact(_event("m.room.power_levels", PL), rv)["content"]
        assert out == {k: v for k, v in PL.items() if k not in ("invite", "notifications")}
    for rv in NEW:
        out = redact(_event("m.room.power_levels", PL), rv)["content"]
        assert out == {k: v for k, v in PL.items() if k != "notifications"}


def test_aliases_only_before_v6() -> None:
    content = {"aliases": ["#a:x"]}
    for rv in OLD:
        assert redact(_event("m.room.aliases", content), rv)["content"] == content
    for rv in [*V6_7, V["8"], *V9_10, *NEW]:
        assert redact(_event("m.room.aliases", content), rv)["content"] == {}


def test_history_visibility_and_redaction() -> None:
    hv = {"history_visibility": "shared", "x": 1}
    for rv in V.values():
        assert redact(_event("m.room.history_visibility", hv), rv)["content"] == {
            "history_visibility": "shared"
        }
    red = _event("m.room.redaction", {"redacts": "$a", "reason": "r"}, redacts="$a")
    for rv in V.values():
        out = redact(red, rv)
        assert "redacts" not in out  # the top-level key is never protected
        expected = {"redacts": "$a"} if rv in NEW else {}
        assert out["content"] == expected


def test_input_not_modified() -> None:
    ev = _event("m.room.member", dict(MEMBER))
    before = repr(ev)
    redact(ev, V["11"])
    assert repr(ev) == before
