"""The key ring: fetching, verifying, caching and expiring other servers' keys
(server-server API "Retrieving server keys"), over a fake federation client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from signedjson.key import generate_signing_key

from federation.errors import FederationError
from federation.key_responses import (
    MAX_KEY_VALIDITY_MS,
    KeyResponseError,
    own_key_response,
    verify_key_response,
)
from federation.keyring import MIN_REFETCH_INTERVAL_S, KeyRing
from homeserver.clock import FakeClock
from homeserver.config import OldSigningKey, TrustedKeyServer
from homeserver.events import KNOWN_ROOM_VERSIONS, Event, SigningKey
from homeserver.events.canonical import encode_base64
from homeserver.events.errors import SignatureError
from homeserver.events.hashing import add_content_hash
from homeserver.events.signing import sign_event_pdu, sign_json
from storage.database import Database
from storage.server_keys import ServerKeyStore

DAY_MS = 86_400_000


@dataclass
class RemoteServer:
    name: str
    key: SigningKey
    validity_ms: int = DAY_MS
    old: dict[str, OldSigningKey] = field(default_factory=dict)

    def response(self, now_ms: int) -> dict[str, Any]:
        return own_key_response(self.name, self.key, self.old, now_ms + self.validity_ms)


@dataclass
class FakeClient:
    clock: FakeClock
    servers: dict[str, RemoteServer] = field(default_factory=dict)
    notaries: dict[str, RemoteServer] = field(default_factory=dict)
    gets: list[str] = field(default_factory=list)
    posts: list[tuple[str, Any]] = field(default_factory=list)
    tamper: bool = False
    delay: float = 0

    async def get_json(self, destination: str, path: str, query: Any = None, **_: Any) -> Any:
        assert path == "/_matrix/key/v2/server"
        self.gets.append(destination)
        if self.delay:
            await asyncio.sleep(self.delay)
        server = self.servers.get(destination) or self.notaries.get(destination)
        if server is None:
            raise FederationError(destination, "unreachable")
        response = server.response(self.clock.time_ms())
        if self.tamper:
            response["valid_until_ts"] += 1
        return response

    async def post_json(self, destination: str, path: str, body: Any, *_: Any, **__: Any) -> Any:
        assert path == "/_matrix/key/v2/query"
        self.posts.append((destination, body))
        notary = self.notaries[destination]
        answers = []
        for server_name in body["server_keys"]:
            if server_name in self.servers:
                response = self.servers[server_name].response(self.clock.time_ms())
                answers.append(sign_json(response, notary.name, notary.key))
        return {"server_keys": answers}


def key_id(key: SigningKey) -> str:
    return f"ed25519:{key.version}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def remote() -> RemoteServer:
    return RemoteServer("remote.test", generate_signing_key("r1"))


def make_ring(
    database: Database,
    clock: FakeClock,
    client: FakeClient,
    trusted: tuple[TrustedKeyServer, ...] = (),
) -> KeyRing:
    own = generate_signing_key("me")
    return KeyRing(
        "me.test",
        own,
        {},
        ServerKeyStore(database),
        client,
        clock,
        trusted_key_servers=trusted,
    )


async def test_keys_are_fetched_verified_and_cached(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    client = FakeClient(clock, {remote.name: remote})
    ring = make_ring(database, clock, client)
    now = clock.time_ms()
    keys = await ring.get_server_keys(remote.name, [key_id(remote.key)], now)
    assert keys[key_id(remote.key)].verify_key == remote.key.verify_key
    assert keys[key_id(remote.key)].valid_until_ts == now + DAY_MS
    await ring.get_server_keys(remote.name, [key_id(remote.key)], now)
    assert client.gets == [remote.name]
    # a second key ring over the same database finds them without fetching
    other = make_ring(database, clock, client)
    assert await other.get_server_keys(remote.name, [key_id(remote.key)], now)
    assert client.gets == [remote.name]


async def test_expired_keys_are_fetched_again(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    client = FakeClient(clock, {remote.name: remote})
    ring = make_ring(database, clock, client)
    await ring.get_server_keys(remote.name, [], clock.time_ms())
    clock.advance(DAY_MS / 1000 - 10)
    await ring.get_server_keys(remote.name, [], clock.time_ms())
    assert len(client.gets) == 1
    clock.advance(20)
    keys = await ring.get_server_keys(remote.name, [], clock.time_ms())
    assert len(client.gets) == 2
    assert keys[key_id(remote.key)].valid_until_ts == clock.time_ms() + DAY_MS


async def test_validity_is_capped_at_seven_days(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    remote.validity_ms = 365 * DAY_MS
    ring = make_ring(database, clock, FakeClient(clock, {remote.name: remote}))
    keys = await ring.get_server_keys(remote.name, [], clock.time_ms())
    assert keys[key_id(remote.key)].valid_until_ts == clock.time_ms() + MAX_KEY_VALIDITY_MS


async def test_bad_self_signature_is_rejected_and_nothing_stored(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    client = FakeClient(clock, {remote.name: remote}, tamper=True)
    ring = make_ring(database, clock, client)
    assert await ring.get_server_keys(remote.name, [], clock.time_ms()) == {}
    stored = await ServerKeyStore(database).get_keys([remote.name])
    assert stored[remote.name] == {}
    assert await ServerKeyStore(database).get_response(remote.name) is None


async def test_unknown_key_is_not_refetched_at_once(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    client = FakeClient(clock, {remote.name: remote})
    ring = make_ring(database, clock, client)
    for _ in range(5):
        assert await ring.get_server_keys(remote.name, ["ed25519:nope"], clock.time_ms()) == {}
    assert len(client.gets) == 1
    clock.advance(MIN_REFETCH_INTERVAL_S + 1)
    await ring.get_server_keys(remote.name, ["ed25519:nope"], clock.time_ms())
    assert len(client.gets) == 2


async def test_concurrent_lookups_share_one_fetch(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    client = FakeClient(clock, {remote.name: remote}, delay=0.05)
    ring = make_ring(database, clock, client)
    results = await asyncio.gather(
        *(
            ring.get_server_keys(remote.name, [key_id(remote.key)], clock.time_ms())
            for _ in range(8)
        )
    )
    assert all(results)
    assert client.gets == [remote.name]


async def test_old_verify_keys_are_valid_until_they_expired(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    old_key = generate_signing_key("old")
    expired = clock.time_ms() - 1000
    remote.old = {
        key_id(old_key): OldSigningKey(
            key_id(old_key), encode_base64(old_key.verify_key.encode()), expired
        )
    }
    ring = make_ring(database, clock, FakeClient(clock, {remote.name: remote}))
    keys = await ring.get_server_keys(remote.name, [key_id(old_key)], expired - 5000)
    assert keys[key_id(old_key)].valid_until_ts == expired
    stored = await ServerKeyStore(database).get_keys([remote.name])
    assert stored[remote.name][key_id(old_key)].expired
    assert await ring.get_server_keys(remote.name, [key_id(old_key)], clock.time_ms()) == {}


async def test_keys_through_a_notary_with_pinned_key(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    notary = RemoteServer("notary.test", generate_signing_key("n"))
    client = FakeClient(clock, {remote.name: remote}, {notary.name: notary})
    pinned = {key_id(notary.key): encode_base64(notary.key.verify_key.encode())}
    ring = make_ring(database, clock, client, (TrustedKeyServer(notary.name, pinned),))
    keys = await ring.get_server_keys(remote.name, [key_id(remote.key)], clock.time_ms())
    assert key_id(remote.key) in keys
    assert client.gets == []  # neither the remote nor the pinned notary asked directly
    (destination, body) = client.posts[0]
    assert destination == notary.name
    assert body == {
        "server_keys": {
            remote.name: {key_id(remote.key): {"minimum_valid_until_ts": clock.time_ms()}}
        }
    }


async def test_notary_with_wrong_signature_falls_back_to_the_server(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    notary = RemoteServer("notary.test", generate_signing_key("n"))
    client = FakeClient(clock, {remote.name: remote}, {notary.name: notary})
    other = generate_signing_key("x")
    pinned = {key_id(other): encode_base64(other.verify_key.encode())}
    ring = make_ring(database, clock, client, (TrustedKeyServer(notary.name, pinned),))
    keys = await ring.get_server_keys(remote.name, [], clock.time_ms())
    assert keys
    assert client.gets == [remote.name]
    stored = await ServerKeyStore(database).get_keys([remote.name])
    assert stored[remote.name][key_id(remote.key)].from_server == remote.name


async def test_verify_json_for_server(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    ring = make_ring(database, clock, FakeClient(clock, {remote.name: remote}))
    signed = sign_json({"a": 1}, remote.name, remote.key)
    await ring.verify_json_for_server(signed, remote.name, clock.time_ms())
    with pytest.raises(SignatureError):
        await ring.verify_json_for_server({**signed, "a": 2}, remote.name, clock.time_ms())
    with pytest.raises(SignatureError):
        await ring.verify_json_for_server({"a": 1}, remote.name, clock.time_ms())
    with pytest.raises(SignatureError):  # key not valid that late
        await ring.verify_json_for_server(signed, remote.name, clock.time_ms() + 2 * DAY_MS)


async def test_own_keys_need_no_fetch(database: Database, clock: FakeClock) -> None:
    client = FakeClient(clock)
    own = generate_signing_key("me")
    ring = KeyRing("me.test", own, {}, ServerKeyStore(database), client, clock)
    signed = sign_json({"a": 1}, "me.test", own)
    await ring.verify_json_for_server(signed, "me.test", clock.time_ms() + 10 * DAY_MS)
    assert client.gets == []


def _event(server: str, key: SigningKey, ts: int, version: str = "10") -> Event:
    room_version = KNOWN_ROOM_VERSIONS[version]
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": "!room:" + server,
        "sender": f"@u:{server}",
        "content": {"body": "hi"},
        "origin_server_ts": ts,
        "depth": 3,
        "prev_events": [],
        "auth_events": [],
    }
    add_content_hash(pdu)
    sign_event_pdu(pdu, room_version, server, key)
    return Event.from_pdu(pdu, room_version)


async def test_verify_events_in_one_batch(
    database: Database, clock: FakeClock, remote: RemoteServer
) -> None:
    second = RemoteServer("second.test", generate_signing_key("s"))
    client = FakeClient(clock, {remote.name: remote, second.name: second})
    ring = make_ring(database, clock, client)
    now = clock.time_ms()
    stranger = generate_signing_key("r1")  # same key ID as remote's, different key
    events = [
        _event(remote.name, remote.key, now),
        _event(second.name, second.key, now - 1000),
        _event(remote.name, stranger, now),
        _event(remote.name, remote.key, now + 30 * DAY_MS),  # v10: key not valid then
        _event(remote.name, remote.key, now + 30 * DAY_MS, version="4"),  # v4 ignores it
        _event("unknown.test", stranger, now),
    ]
    failures = await ring.verify_events(events)
    assert [bool(f) for f in failures] == [False, False, True, True, False, True]
    assert sorted(client.gets) == ["remote.test", "second.test", "unknown.test"]


def test_verify_key_response_rules(remote: RemoteServer, clock: FakeClock) -> None:
    now = clock.time_ms()
    good = remote.response(now)
    assert verify_key_response(good, remote.name, now).valid_until_ts == now + DAY_MS
    with pytest.raises(KeyResponseError):
        verify_key_response(good, "other.test", now)
    unsigned = {k: v for k, v in good.items() if k != "signatures"}
    with pytest.raises(KeyResponseError):
        verify_key_response(unsigned, remote.name, now)
    other = generate_signing_key("zz")
    signed_by_other = sign_json(unsigned, remote.name, other)  # key not listed
    with pytest.raises(KeyResponseError):
        verify_key_response(signed_by_other, remote.name, now)
    for bad in (
        {**good, "valid_until_ts": "soon"},
        {**good, "verify_keys": []},
        {**good, "verify_keys": {key_id(remote.key): {"key": "not base64!"}}},
        {**good, "old_verify_keys": {"ed25519:o": {"key": "AAAA"}}},
        [good],
    ):
        with pytest.raises(KeyResponseError):
            verify_key_response(bad, remote.name, now)
