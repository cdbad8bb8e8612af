"""Forged and malformed PDUs through ``PUT /send`` between real federating servers:
every check of s2s "Checks performed on receipt of a PDU" (format, signatures,
hashes, auth events, state before, current state) and the transaction limits."""

from __future__ import annotations

import copy
import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from federation.errors import FederationError
from federation.event_fetch import RemoteEventFetcher
from homeserver.events import KNOWN_ROOM_VERSIONS, Event, EventBuilder
from homeserver.server import Homeserver
from tests.federation.rooms import build_pdu, send_txn, settle, share_room
from tests.federation.servers import FederatingServer, ServerFactory, TlsFiles, free_port
from tests.rooms.helpers import User, make_user


async def build_at(
    server: Homeserver,
    room_id: str,
    prev_id: str,
    event_type: str,
    sender: str,
    content: dict[str, Any],
) -> Event:
    """An event of ``server`` on top of ``prev_id``, authed by the state after it."""
    stores = server.stores
    version = await stores.events.room_version_id(room_id)
    assert version is not None
    prev = await stores.events.get_event(prev_id)
    assert prev is not None and prev.state_group is not None
    state = await stores.state.get_state(prev.state_group)
    builder = EventBuilder(
        KNOWN_ROOM_VERSIONS[version], event_type, sender, content, room_id=room_id
    )
    return builder.build(
        prev_event_ids=[prev_id],
        auth_event_ids=[state[k] for k in sorted(builder.auth_types()) if k in state],
        depth=prev.depth + 1,
        server_name=server.config.server_name,
        signing_key=server.signing_key,
        origin_server_ts=server.clock.time_ms(),
    )


async def build_after(
    server: Homeserver,
    base: Event,
    sender: str,
    auth_event_ids: list[str],
    *,
    same_prevs: bool = False,
) -> Event:
    """A message by ``sender`` on top of ``base`` (or beside it: ``same_prevs``)."""
    builder = EventBuilder(
        base.room_version, "m.room.message", sender, {"body": "b"}, room_id=base.room_id
    )
    return builder.build(
        prev_event_ids=list(base.prev_event_ids) if same_prevs else [base.event_id],
        auth_event_ids=auth_event_ids,
        depth=base.depth if same_prevs else base.depth + 1,
        server_name=server.config.server_name,
        signing_key=server.signing_key,
        origin_server_ts=server.clock.time_ms(),
    )


async def visible_bodies(user: User, room_id: str) -> set[str]:
    """Message bodies ``user`` sees in /messages and an initial /sync."""
    messages = await user.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=50")
    bodies = {e["content"].get("body") for e in messages["chunk"]}
    sync = await user.sync()
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    return bodies | {e["content"].get("body") for e in timeline}


async def assert_not_stored(server: FederatingServer, *event_ids: str) -> None:
    for event_id in event_ids:
        assert await server.server.stores.events.get_event(event_id) is None, event_id


async def test_bad_signature_is_dropped(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "x"})
    pdu = copy.deepcopy(dict(event.pdu))
    key_id = next(iter(pdu["signatures"][a.server_name]))
    pdu["signatures"][a.server_name][key_id] = "A" * 86
    unsigned = copy.deepcopy(dict(event.pdu))
    del unsigned["signatures"]
    unsigned["signatures"] = {}
    answer = await send_txn(a, b, [pdu, unsigned])
    assert "Signature" in answer["pdus"][event.event_id]["error"]
    await assert_not_stored(b, event.event_id)
    assert "x" not in await visible_bodies(bob, room_id)


async def test_hash_mismatch_keeps_the_redacted_copy(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "real"})
    pdu = copy.deepcopy(dict(event.pdu))
    pdu["content"]["body"] = "tampered"
    assert await send_txn(a, b, [pdu]) == {"pdus": {event.event_id: {}}}
    stored = await b.server.stores.events.get_event(event.event_id)
    assert stored is not None and stored.rejected_reason is None
    assert dict(stored.event.content) == {}
    assert not {"real", "tampered"} & await visible_bodies(bob, room_id)


async def test_rejected_events_never_reach_timelines_or_state(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, _alice, bob = await share_room(a, b)
    eve = f"@eve:{a.server_name}"  # never joined
    message = await build_pdu(a.server, room_id, "m.room.message", eve, {"body": "eve was here"})
    topic = await build_pdu(
        a.server, room_id, "m.room.topic", eve, {"topic": "eve's topic"}, state_key=""
    )
    state_before = dict(await b.server.stores.state.get_current_state(room_id))
    answer = await send_txn(a, b, [message.pdu, topic.pdu])
    for event in (message, topic):
        assert answer["pdus"][event.event_id] == {}  # handled: stored as rejected
        stored = await b.server.stores.events.get_event(event.event_id)
        assert stored is not None and stored.rejected_reason is not None
    assert await b.server.stores.state.get_current_state(room_id) == state_before
    assert "eve was here" not in await visible_bodies(bob, room_id)
    topic_state = await bob.request("GET", f"/rooms/{room_id}/state/m.room.topic", expect=404)
    assert topic_state["errcode"] == "M_NOT_FOUND"
    extremities = await b.server.stores.events.get_forward_extremities(room_id)
    assert message.event_id not in extremities and topic.event_id not in extremities
    # The next local event does not build on them.
    reply = await bob.send(room_id, "next")
    stored_reply = await b.server.stores.events.get_event(reply)
    assert stored_reply is not None
    assert not {message.event_id, topic.event_id} & set(stored_reply.event.prev_event_ids)


async def test_soft_failed_events_are_stored_but_hidden(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    eve = await make_user(a.harness, "eve")
    await eve.join(room_id)
    await settle(a, b)
    eve_join = (await b.server.stores.state.get_current_state(room_id))[
        ("m.room.member", eve.user_id)
    ]
    await alice.request("POST", f"/rooms/{room_id}/ban", {"user_id": eve.user_id})
    await settle(a, b)
    # eve's server sends a message on top of her join, before the ban: allowed by its
    # auth events and the state before it, not by the room's current state.
    event = await build_at(
        a.server, room_id, eve_join, "m.room.message", eve.user_id, {"body": "sneaky"}
    )
    assert await send_txn(a, b, [event.pdu]) == {"pdus": {event.event_id: {}}}
    stored = await b.server.stores.events.get_event(event.event_id)
    assert stored is not None and stored.soft_failed and stored.rejected_reason is None
    assert event.event_id not in await b.server.stores.events.get_forward_extremities(room_id)
    assert "sneaky" not in await visible_bodies(bob, room_id)
    reply = await bob.send(room_id, "after")
    stored_reply = await b.server.stores.events.get_event(reply)
    assert stored_reply is not None
    assert event.event_id not in stored_reply.event.prev_event_ids
    # A replay of the soft-failed event changes nothing.
    assert await send_txn(a, b, [event.pdu]) == {"pdus": {event.event_id: {}}}
    assert "sneaky" not in await visible_bodies(bob, room_id)


async def test_fields_of_the_wrong_room_version_are_dropped(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "v"})
    # v1-style references ([event_id, hashes] pairs) in a v3+ room.
    pairs = copy.deepcopy(dict(event.pdu))
    pairs["prev_events"] = [[p, {"sha256": "x"}] for p in pairs["prev_events"]]
    # A claimed event_id (v1 format) in a v3+ room: not trusted, breaks the signature.
    claimed = copy.deepcopy(dict(event.pdu))
    claimed["event_id"] = "$claimed:" + a.server_name
    # A field of the wrong type (depth as a string).
    no_room = copy.deepcopy(dict(event.pdu))
    no_room["depth"] = "7"
    answer = await send_txn(a, b, [pairs, claimed, no_room])
    assert all("error" in r for r in answer["pdus"].values()), answer
    await assert_not_stored(b, event.event_id, "$claimed:" + a.server_name)
    assert "v" not in await visible_bodies(bob, room_id)


async def test_oversized_events_are_dropped(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    big = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "x" * 66000})
    answer = await send_txn(a, b, [big.pdu])
    assert "65536" in answer["pdus"][big.event_id]["error"]
    await assert_not_stored(b, big.event_id)


async def test_events_must_be_signed_by_the_senders_server(
    federation_servers: ServerFactory,
) -> None:
    a, b, c = await federation_servers(3)
    room_id, alice, bob = await share_room(a, b)
    # c relays alice's event, correctly signed by a: accepted (s2s allows relaying).
    relayed = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "r"})
    assert await send_txn(c, b, [relayed.pdu]) == {"pdus": {relayed.event_id: {}}}
    # c claims an event of alice signed only by c: dropped.
    forged = await build_pdu(
        a.server,
        room_id,
        "m.room.message",
        alice.user_id,
        {"body": "forged"},
        sign_as=(c.server_name, c.server.signing_key),
    )
    answer = await send_txn(c, b, [forged.pdu])
    assert "Signature" in answer["pdus"][forged.event_id]["error"]
    await assert_not_stored(b, forged.event_id)
    assert "forged" not in await visible_bodies(bob, room_id)


async def test_replays_are_no_ops(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "once"})
    assert await send_txn(a, b, [event.pdu]) == {"pdus": {event.event_id: {}}}
    first = await b.server.stores.events.get_event(event.event_id)
    top = await b.server.stores.events.max_stream_ordering()
    for pdus in ([event.pdu], [event.pdu, event.pdu]):
        assert await send_txn(a, b, pdus) == {"pdus": {event.event_id: {}}}
    again = await b.server.stores.events.get_event(event.event_id)
    assert again is not None and first is not None
    assert again.stream_ordering == first.stream_ordering
    assert await b.server.stores.events.max_stream_ordering() == top
    messages = await bob.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=50")
    assert [e["content"].get("body") for e in messages["chunk"]].count("once") == 1


async def test_more_than_50_pdus_is_refused_whole(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    events = [
        await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": str(i)})
        for i in range(51)
    ]
    with pytest.raises(FederationError) as caught:
        await send_txn(a, b, [e.pdu for e in events])
    assert (caught.value.status, caught.value.errcode) == (400, "M_BAD_JSON")
    await assert_not_stored(b, *(e.event_id for e in events))
    # Exactly 50 is fine.
    answer = await send_txn(a, b, [e.pdu for e in events[:50]])
    assert len(answer["pdus"]) == 50


async def test_state_key_spoofing_is_refused(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, _alice, bob = await share_room(a, b)
    mallory = await make_user(a.harness, "mallory")
    await mallory.join(room_id)
    await settle(a, b)
    before = dict(await b.server.stores.state.get_current_state(room_id))
    # a's user sets the membership of b's user: not allowed (sender != state_key).
    spoof = await build_pdu(
        a.server,
        room_id,
        "m.room.member",
        mallory.user_id,
        {"membership": "leave"},
        state_key=bob.user_id,
    )
    # a claims a membership event sent by b's user: b's signature is missing.
    claimed = await build_pdu(
        a.server,
        room_id,
        "m.room.member",
        bob.user_id,
        {"membership": "leave"},
        state_key=bob.user_id,
    )
    answer = await send_txn(a, b, [spoof.pdu, claimed.pdu])
    assert answer["pdus"][spoof.event_id] == {}  # handled: stored as rejected
    assert "Signature" in answer["pdus"][claimed.event_id]["error"]
    await assert_not_stored(b, claimed.event_id)
    assert await b.server.stores.state.get_current_state(room_id) == before
    assert (await b.server.stores.state.current_members(room_id))[bob.user_id] == "join"


# -- peers answering garbage to our requests ---------------------------------------------

HUGE = 2 * 1024 * 1024

GARBAGE: dict[str, Callable[[], web.StreamResponse]] = {
    "not json": lambda: web.Response(text="<html>oops</html>", content_type="text/html"),
    "truncated json": lambda: web.Response(text='{"pdus": [', content_type="application/json"),
    "a json array": lambda: web.json_response([1, 2, 3]),
    "a json string": lambda: web.json_response("hello"),
    "wrong types": lambda: web.json_response(
        {
            "pdus": "nope",
            "auth_chain": {"a": 1},
            "events": [1, "x", None, {"type": 5, "room_id": []}],
            "pdu_ids": [1, 2],
            "auth_chain_ids": "x",
        }
    ),
    "nan": lambda: web.Response(text='{"pdus": [NaN]}', content_type="application/json"),
    "server error": lambda: web.Response(status=500, text="boom"),
    "huge body": lambda: web.Response(
        body=b'{"pdus": ["' + b"x" * HUGE + b'"]}', content_type="application/json"
    ),
}


@dataclasses.dataclass
class FakePeer:
    server_name: str
    answer: str = "not json"
    requests: int = 0


@pytest.fixture
async def fake_peer(tls_files: TlsFiles) -> AsyncIterator[FakePeer]:
    """An HTTPS server on loopback answering every request with ``GARBAGE[answer]``."""
    port = free_port()
    peer = FakePeer(f"localhost:{port}")

    async def handler(_request: web.Request) -> web.StreamResponse:
        peer.requests += 1
        return GARBAGE[peer.answer]()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.certificate, tls_files.private_key)
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    await site.start()
    yield peer
    await runner.cleanup()


def cap_responses(server: FederatingServer) -> None:
    """Make "huge" mean more than 1 MiB for ``server``'s outbound requests."""
    client: Any = server.fed.client
    client._settings = dataclasses.replace(client._settings, max_response_bytes=1024 * 1024)


@pytest.mark.parametrize("answer", sorted(GARBAGE))
async def test_garbage_answers_give_empty_fetch_results(
    federation_servers: ServerFactory, fake_peer: FakePeer, answer: str
) -> None:
    (a,) = await federation_servers(1)
    cap_responses(a)
    fake_peer.answer = answer
    fetcher = RemoteEventFetcher(a.fed.client)
    peer, room, event = fake_peer.server_name, "!r:" + fake_peer.server_name, "$e"
    assert await fetcher.event(peer, event) is None
    assert await fetcher.event_auth(peer, room, event) == []
    assert await fetcher.state_ids(peer, room, event) is None
    state = await fetcher.state(peer, room, event)
    assert state is None or state.pdus == []
    # Only objects come back (their checks are the pipeline's: parse_pdu drops them).
    missing = await fetcher.missing_events(peer, room, ["$a"], ["$b"], 0)
    assert all(isinstance(p, dict) for p in missing)
    assert fake_peer.requests == 5


class _Redirect:
    """A requester sending every request to the fake peer instead."""

    def __init__(self, client: Any, peer: str) -> None:
        self._client, self._peer = client, peer

    async def get_json(
        self, destination: str, path: str, query: Any = None, *, timeout_s: float | None = None
    ) -> Any:
        return await self._client.get_json(self._peer, path, query, timeout_s=timeout_s)

    async def post_json(
        self,
        destination: str,
        path: str,
        body: Any,
        query: Any = None,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        return await self._client.post_json(self._peer, path, body, query, timeout_s=timeout_s)


@pytest.mark.parametrize("answer", ["not json", "wrong types", "huge body"])
async def test_garbage_answers_during_gap_filling_do_not_fail_send(
    federation_servers: ServerFactory,
    fake_peer: FakePeer,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    cap_responses(b)
    fake_peer.answer = answer
    # An event on top of one b has not seen (b fills the gap: get_missing_events,
    # state_ids, event) and one citing an auth event b has not seen (event_auth, event).
    hidden = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "h"})
    on_top = await build_after(a.server, hidden, alice.user_id, list(hidden.auth_event_ids))
    rename = await build_pdu(
        a.server,
        room_id,
        "m.room.member",
        alice.user_id,
        {"membership": "join", "displayname": "A"},
        state_key=alice.user_id,
    )
    current = await a.server.stores.state.get_current_state(room_id)
    auth = [current[("m.room.create", "")], current[("m.room.power_levels", "")]]
    cites_unknown = await build_pdu(
        a.server, room_id, "m.room.message", alice.user_id, {"body": "u"}
    )
    cites_unknown = await build_after(
        a.server, cites_unknown, alice.user_id, [*auth, rename.event_id], same_prevs=True
    )
    pipeline: Any = b.server.federation_events.pipeline  # type: ignore[union-attr]
    monkeypatch.setattr(
        pipeline, "_fetcher", RemoteEventFetcher(_Redirect(b.fed.client, fake_peer.server_name))
    )
    answer_body = await send_txn(a, b, [on_top.pdu, cites_unknown.pdu])
    assert "error" in answer_body["pdus"][on_top.event_id]
    assert "error" in answer_body["pdus"][cites_unknown.event_id]
    assert "Internal" not in str(answer_body)  # handled, not crashed
    assert fake_peer.requests >= 3
    await assert_not_stored(b, on_top.event_id, hidden.event_id, cites_unknown.event_id)
    # b still works: the next event from a is processed normally.
    monkeypatch.undo()
    fine = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "fine"})
    assert await send_txn(a, b, [fine.pdu]) == {"pdus": {fine.event_id: {}}}
    assert "fine" in await visible_bodies(bob, room_id)
