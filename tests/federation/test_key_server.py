"""This server's key endpoints through the HTTP API: its own signed keys and notary
answers (server-server API "Publishing Keys", "Querying Keys Through Another
Server"), and the unauthenticated version endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key

from federation.errors import FederationError
from federation.key_responses import own_key_response, verify_key_response
from homeserver.events.canonical import encode_base64
from homeserver.events.signing import ServerKey, SigningKey, key_id_of, verify_json
from storage.server_keys import StoredKeyResponse, StoredServerKey
from tests.conftest import HarnessFactory, HomeserverHarness

DAY_MS = 86_400_000
# Blacklisted IP literals: fetching their keys fails at once, without any network.
REMOTE = "127.0.0.1:9"


def own_key(hs: HomeserverHarness) -> dict[str, ServerKey]:
    key = hs.server.signing_key
    return {f"ed25519:{key.version}": ServerKey(key.verify_key)}


async def get(hs: HomeserverHarness, path: str, status: int = 200) -> Any:
    response = await hs.client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def post(hs: HomeserverHarness, path: str, body: Any, status: int = 200) -> Any:
    kwargs = {"data": body} if isinstance(body, (str, bytes)) else {"json": body}
    response = await hs.client.post(path, **kwargs)
    assert response.status == status, await response.text()
    return await response.json()


async def store_remote_response(
    hs: HomeserverHarness, *, fetched_ts: int, valid_until_ts: int
) -> dict[str, Any]:
    remote_key = generate_signing_key("rk")
    response = own_key_response(REMOTE, remote_key, {}, valid_until_ts)
    b64 = encode_base64(remote_key.verify_key.encode())
    row = StoredServerKey(REMOTE, "ed25519:rk", b64, valid_until_ts, False, fetched_ts, REMOTE)
    await hs.server.stores.server_keys.store_response(
        StoredKeyResponse(REMOTE, valid_until_ts, fetched_ts, REMOTE, response), [row]
    )
    return response


class ScriptedOrigin:
    """Stands in for the remote server's ``GET /_matrix/key/v2/server``: each fetch
    gets the next scripted answer (a key response, or None for a failure)."""

    def __init__(self, answers: list[dict[str, Any] | None]) -> None:
        self.answers = answers
        self.fetches = 0

    async def get_json(self, destination: str, path: str, *_: Any, **__: Any) -> Any:
        assert (destination, path) == (REMOTE, "/_matrix/key/v2/server")
        self.fetches += 1
        answer = self.answers.pop(0)
        if answer is None:
            raise FederationError(destination, "400 from the origin", status=400)
        return answer


def origin_response(key: SigningKey, valid_until_ts: int) -> dict[str, Any]:
    return own_key_response(REMOTE, key, {}, valid_until_ts)


def notary_query(key_id: str, min_ts: int) -> dict[str, Any]:
    return {"server_keys": {REMOTE: {key_id: {"minimum_valid_until_ts": min_ts}}}}


async def test_own_keys_are_signed_and_valid_for_a_day(make_homeserver: HarnessFactory) -> None:
    old = generate_signing_key("old")
    old_b64 = encode_base64(old.verify_key.encode())
    hs = await make_homeserver(
        old_signing_keys={"ed25519:old": {"key": old_b64, "expired_ts": 1_600_000_000_000}}
    )
    body = await get(hs, "/_matrix/key/v2/server")
    now = hs.clock.time_ms()
    verified = verify_key_response(body, "test.local", now)
    assert body["valid_until_ts"] == now + DAY_MS
    key_id = f"ed25519:{hs.server.signing_key.version}"
    assert set(body["verify_keys"]) == {key_id}
    assert body["old_verify_keys"] == {
        "ed25519:old": {"key": old_b64, "expired_ts": 1_600_000_000_000}
    }
    assert verified.keys["ed25519:old"].expired
    assert await get(hs, f"/_matrix/key/v2/server/{key_id}") == body  # deprecated form


async def test_own_key_response_is_renewed_after_half_its_validity(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(key_refresh_interval="2h")
    first = await get(hs, "/_matrix/key/v2/server")
    hs.clock.advance(1800)
    assert await get(hs, "/_matrix/key/v2/server") == first
    hs.clock.advance(3601)
    renewed = await get(hs, "/_matrix/key/v2/server")
    assert renewed["valid_until_ts"] == hs.clock.time_ms() + 2 * 3600 * 1000


async def test_notary_answers_for_itself(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    body = await get(hs, "/_matrix/key/v2/query/test.local")
    (answer,) = body["server_keys"]
    verify_key_response(answer, "test.local", hs.clock.time_ms())
    bulk = await post(hs, "/_matrix/key/v2/query", {"server_keys": {"test.local": {}}})
    assert bulk["server_keys"] == [answer]


async def test_notary_serves_cached_responses_counter_signed(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver()
    now = hs.clock.time_ms()
    await store_remote_response(hs, fetched_ts=now - 1000, valid_until_ts=now + DAY_MS)
    body = await get(hs, f"/_matrix/key/v2/query/{REMOTE}")
    (answer,) = body["server_keys"]
    verify_key_response(answer, REMOTE, now)  # the origin's own signature
    verify_json(answer, "test.local", lambda _s, k: own_key(hs).get(k))  # and ours
    bulk = await post(
        hs,
        "/_matrix/key/v2/query",
        {"server_keys": {REMOTE: {"ed25519:rk": {"minimum_valid_until_ts": now + 1000}}}},
    )
    assert bulk["server_keys"] == [answer]


async def test_notary_serves_stale_responses_when_the_server_is_unreachable(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver()
    now = hs.clock.time_ms()
    stale = await store_remote_response(
        hs, fetched_ts=now - 3 * DAY_MS, valid_until_ts=now - DAY_MS
    )
    body = await get(hs, f"/_matrix/key/v2/query/{REMOTE}?minimum_valid_until_ts={now}")
    (answer,) = body["server_keys"]
    assert answer["valid_until_ts"] == stale["valid_until_ts"]
    assert "test.local" in answer["signatures"]


async def test_deprecated_get_with_a_key_id(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    now = hs.clock.time_ms()
    cached = await store_remote_response(hs, fetched_ts=now - 1000, valid_until_ts=now + DAY_MS)
    body = await get(hs, f"/_matrix/key/v2/query/{REMOTE}/ed25519:rk")
    (answer,) = body["server_keys"]
    assert answer["verify_keys"] == cached["verify_keys"]
    verify_json(answer, "test.local", lambda _s, k: own_key(hs).get(k))
    # a key the server never listed: nothing to vouch for
    assert await get(hs, f"/_matrix/key/v2/query/{REMOTE}/ed25519:other") == {"server_keys": []}


async def test_notary_fetches_again_for_a_later_minimum_and_keeps_expired_keys(
    make_homeserver: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hs = await make_homeserver()
    now = hs.clock.time_ms()
    key = generate_signing_key("k0")
    expired = origin_response(key, now - DAY_MS)
    origin = ScriptedOrigin([expired, expired, None])
    monkeypatch.setattr(hs.server.federation.client, "get_json", origin.get_json)
    path = "/_matrix/key/v2/query"
    first = await post(hs, path, notary_query("ed25519:k0", 0))
    assert [a["valid_until_ts"] for a in first["server_keys"]] == [now - DAY_MS]
    assert origin.fetches == 1
    # asked for a key valid later than the one we have: fetched again at once, and
    # the origin's answer, expired as it is, is the best there is
    for fetches in (2, 3):  # the third fetch fails: the stored response is served
        body = await post(hs, path, notary_query("ed25519:k0", now - DAY_MS + 1000))
        (answer,) = body["server_keys"]
        assert origin.fetches == fetches
        assert answer["valid_until_ts"] == now - DAY_MS
        assert set(answer["verify_keys"]) == {"ed25519:k0"}
        verify_key_response(answer, REMOTE, now)
        verify_json(answer, "test.local", lambda _s, k: own_key(hs).get(k))
    # good enough for what is asked: no fetch
    await post(hs, path, notary_query("ed25519:k0", now - DAY_MS))
    assert origin.fetches == 3


async def test_notary_keeps_a_key_the_origin_no_longer_lists(
    make_homeserver: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hs = await make_homeserver()
    now = hs.clock.time_ms()
    key1, key2 = generate_signing_key("k1"), generate_signing_key("k2")
    origin = ScriptedOrigin(
        [origin_response(key1, now - DAY_MS), origin_response(key2, now - DAY_MS + 1000)]
    )
    monkeypatch.setattr(hs.server.federation.client, "get_json", origin.get_json)
    path = "/_matrix/key/v2/query"
    await post(hs, path, notary_query(key_id_of(key1), 0))
    second = await post(hs, path, notary_query(key_id_of(key1), now))
    assert origin.fetches == 2
    # the newer response does not list k1: k1 is still answered with the one that did
    assert [set(a["verify_keys"]) for a in second["server_keys"]] == [{"ed25519:k1"}]
    third = await post(hs, path, notary_query(key_id_of(key1), now - DAY_MS))
    assert [set(a["verify_keys"]) for a in third["server_keys"]] == [{"ed25519:k1"}]
    assert origin.fetches == 2
    # asked for every key: both responses
    every = await get(hs, f"/_matrix/key/v2/query/{REMOTE}?minimum_valid_until_ts=0")
    assert sorted(next(iter(a["verify_keys"])) for a in every["server_keys"]) == [
        "ed25519:k1",
        "ed25519:k2",
    ]


async def test_notary_without_keys_answers_an_empty_list(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    assert await get(hs, "/_matrix/key/v2/query/127.0.0.1:10") == {"server_keys": []}
    assert await get(hs, "/_matrix/key/v2/query/not%20a%20server") == {"server_keys": []}
    body = await post(
        hs,
        "/_matrix/key/v2/query",
        {"server_keys": {"127.0.0.1:10": {}, "[::1]:10": {"ed25519:a": {}}}},
    )
    assert body == {"server_keys": []}
    assert await post(hs, "/_matrix/key/v2/query", {"server_keys": {}}) == {"server_keys": []}


async def test_key_query_bad_input(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    path = "/_matrix/key/v2/query"
    cases: list[tuple[Any, str]] = [
        ("not json", "M_NOT_JSON"),
        ({}, "M_MISSING_PARAM"),
        ({"server_keys": []}, "M_BAD_JSON"),
        ({"server_keys": {"a.test": []}}, "M_BAD_JSON"),
        ({"server_keys": {"a.test": {"ed25519:a": 5}}}, "M_BAD_JSON"),
        ({"server_keys": {"a.test": {"ed25519:a": {"minimum_valid_until_ts": "x"}}}}, "M_BAD_JSON"),
        ({"server_keys": {f"s{i}.test": {} for i in range(101)}}, "M_INVALID_PARAM"),
    ]
    for body, errcode in cases:
        assert (await post(hs, path, body, status=400))["errcode"] == errcode, body
    bad_ts = await get(hs, f"{path}/a.test?minimum_valid_until_ts=soon", status=400)
    assert bad_ts["errcode"] == "M_INVALID_PARAM"


async def test_federation_version_and_unknown_endpoints(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    body = await get(hs, "/_matrix/federation/v1/version")
    assert body["server"]["name"] == "homeserver"
    unknown = await get(hs, "/_matrix/federation/v1/nonsense", status=404)
    assert unknown["errcode"] == "M_UNRECOGNIZED"
    no_auth = await get(hs, "/_matrix/federation/v1/media/download/abc", status=401)
    assert no_auth["errcode"] == "M_UNAUTHORIZED"
