"""The cryptographic test vectors of appendices "Cryptographic Test Vectors"."""

from __future__ import annotations

import copy
from typing import Any

from signedjson.key import decode_signing_key_base64

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    ServerKey,
    add_content_hash,
    check_content_hash,
    sign_event_pdu,
    sign_json,
    verify_json,
)

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
KEY = decode_signing_key_base64("ed25519", "1", SEED)


def lookup(server: str, key_id: str) -> ServerKey | None:
    return ServerKey(KEY.verify_key) if (server, key_id) == ("domain", "ed25519:1") else None


def test_sign_empty_object() -> None:
    signed = sign_json({}, "domain", KEY)
    assert signed == {
        "signatures": {
            "domain": {
                "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
            }
        }
    }
    verify_json(signed, "domain", lookup)


def test_sign_object_with_data() -> None:
    signed = sign_json({"one": 1, "two": "Two"}, "domain", KEY)
    assert signed == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
            }
        },
        "two": "Two",
    }
    verify_json(signed, "domain", lookup)


def _sign_event(pdu: dict[str, Any]) -> dict[str, Any]:
    pdu = copy.deepcopy(pdu)
    pdu.pop("signatures", None)
    add_content_hash(pdu)
    sign_event_pdu(pdu, KNOWN_ROOM_VERSIONS["1"], "domain", KEY)
    return pdu


def test_sign_minimal_event() -> None:
    pdu = {
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000},
    }
    signed = _sign_event(pdu)
    assert signed == {
        "auth_events": [],
        "content": {},
        "depth": 3,
        "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        "origin": "domain",
        "origin_server_ts": 1000000,
        "prev_events": [],
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "signatures": {
            "domain": {
                "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
            }
        },
        "type": "X",
        "unsigned": {"age_ts": 1000000},
    }
    assert check_content_hash(signed)


def test_sign_redactable_event() -> None:
    pdu = {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }
    signed = _sign_event(pdu)
    assert signed["hashes"] == {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"}
    assert signed["signatures"] == {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
        }
    }
    assert signed["content"] == pdu["content"] and signed["unsigned"] == pdu["unsigned"]
