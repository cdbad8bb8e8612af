"""The v1 client event format of the legacy endpoints (pure)."""

from __future__ import annotations

from homeserver.legacy.client_format import in_room, presence_event, v1_client_event


def test_v1_copies_the_sender_and_history_keys_to_the_top_level() -> None:
    event = {
        "type": "m.room.topic",
        "sender": "@a:hs",
        "state_key": "",
        "content": {"topic": "new"},
        "unsigned": {
            "age": 12,
            "prev_content": {"topic": "old"},
            "replaces_state": "$old",
            "prev_sender": "@b:hs",
            "transaction_id": "t1",
        },
    }
    formatted = v1_client_event(event)
    assert formatted["user_id"] == "@a:hs"
    assert formatted["age"] == 12
    assert formatted["prev_content"] == {"topic": "old"}
    assert formatted["replaces_state"] == "$old"
    # only the keys of the v1 format are copied; unsigned itself is kept whole
    assert "prev_sender" not in formatted and "transaction_id" not in formatted
    assert formatted["unsigned"] == event["unsigned"]
    assert "user_id" not in event  # the input is not changed


def test_v1_of_redacted_and_invite_events() -> None:
    because = {"type": "m.room.redaction", "sender": "@a:hs"}
    formatted = v1_client_event(
        {
            "type": "m.room.member",
            "sender": "@a:hs",
            "content": {},
            "unsigned": {"redacted_because": because, "invite_room_state": [{"type": "x"}]},
        }
    )
    assert formatted["redacted_because"] == because
    assert formatted["invite_room_state"] == [{"type": "x"}]


def test_v1_without_unsigned_or_sender() -> None:
    assert v1_client_event({"type": "m.typing", "content": {}}) == {
        "type": "m.typing",
        "content": {},
    }


def test_presence_and_room_labels() -> None:
    assert presence_event("@a:hs", {"presence": "online"}) == {
        "type": "m.presence",
        "sender": "@a:hs",
        "content": {"presence": "online", "user_id": "@a:hs"},
    }
    assert in_room({"type": "m.typing", "content": {}}, "!r:hs") == {
        "type": "m.typing",
        "content": {},
        "room_id": "!r:hs",
    }
