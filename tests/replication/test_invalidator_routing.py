"""Which cache entries each notice drops (``CacheInvalidator`` over fakes of its
owners), what ``CachePublisher`` sends, and the notice fields it relies on."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from homeserver.auth import Authenticator, token_hash
from homeserver.clock import FakeClock
from homeserver.errors import UnknownToken
from homeserver.replication.invalidation import (
    ACCESS_TOKENS,
    CACHE_NAMES,
    EVENTS,
    IGNORED_USERS,
    ONE_TIME_KEYS,
    PUSH_RULES_CACHE,
    PUSHERS,
    ROOMS_PURGED,
    UNREAD_COUNTS,
    USERS,
    CacheInvalidator,
    CachePublisher,
    device_key,
    split_device_key,
)
from homeserver.replication.notices import (
    ACCOUNT_DATA,
    PUSH_RULES,
    RECEIPTS,
    TO_DEVICE,
    TYPING,
    CacheNotice,
    Notice,
    RoomEventNotice,
    RoomsStreamNotice,
    UserStreamNotice,
    decode_notice,
    encode_notice,
)


class Calls:
    """Every owner at once: records each invalidation as (method, *args)."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.log.append((name, *args, *sorted(kwargs.items())))

        return record

    async def reload_user(self, user_id: str) -> None:
        self.log.append(("reload_user", user_id))

    def invalidate_devices(self, devices: Collection[tuple[str, str]]) -> None:
        self.log.append(("invalidate_devices", list(devices)))

    def forget_counts(self, user_ids: Collection[str]) -> None:
        self.log.append(("forget_counts", list(user_ids)))


def invalidator(calls: Calls) -> CacheInvalidator:
    return CacheInvalidator(
        state=calls,
        events=calls,
        sync=calls,
        summaries=calls,
        tokens=calls,
        account_data=calls,
        push_rules=calls,
        unread=calls,
        memberships=calls,
        presence=calls,
        to_device=calls,
        receipts=calls,
        pushers=calls,
        retention=calls,
        key_counts=calls,
    )


def event(**fields: Any) -> RoomEventNotice:
    base: dict[str, Any] = {
        "instance": "A",
        "room_id": "!r:hs",
        "position": 7,
        "event_id": "$e",
        "type": "m.room.message",
        "sender": "@s:hs",
        "state_key": None,
    }
    return RoomEventNotice(**{**base, **fields})


def test_a_message_drops_the_room_events_caches_but_not_its_state() -> None:
    calls = Calls()
    invalidator(calls).on_room_event(event())
    assert calls.log == [
        ("invalidate_if_cached", "$e"),
        ("invalidate_room", "!r:hs"),  # extremities
        ("invalidate_room", "!r:hs"),  # summary
        ("invalidate_room", "!r:hs", 7, ("membership", False)),  # recent events
    ]


def test_a_state_event_drops_the_room_state() -> None:
    calls = Calls()
    invalidator(calls).on_room_event(event(type="m.room.name", state_key=""))
    assert ("invalidate_room", "!r:hs", ()) in calls.log


def test_a_membership_drops_the_room_state_and_the_members_caches() -> None:
    calls = Calls()
    invalidator(calls).on_room_event(event(type="m.room.member", state_key="@m:hs"))
    assert ("invalidate_room", "!r:hs", ("@m:hs",)) in calls.log
    assert ("invalidate_room", "!r:hs", 7, ("membership", True)) in calls.log
    assert ("invalidate_user", "@m:hs") in calls.log  # membership histories
    assert ("membership_changed", "@m:hs") in calls.log  # presence


def test_a_redaction_drops_the_redacted_event() -> None:
    calls = Calls()
    invalidator(calls).on_room_event(event(type="m.room.redaction", redacts="$target"))
    assert calls.log.count(("invalidate_event", "$target")) == 2  # event cache, retention


def test_a_redaction_without_a_target_drops_nothing_more() -> None:
    calls = Calls()
    invalidator(calls).on_room_event(event(type="m.room.redaction"))
    assert [c for c in calls.log if c[0] == "invalidate_event"] == []


def test_a_retention_event_drops_its_cached_policy() -> None:
    calls = Calls()
    invalidator(calls).on_room_event(event(type="m.room.retention", state_key=""))
    assert ("invalidate_event", "$e") in calls.log


def test_user_streams_drop_the_users_entries() -> None:
    calls = Calls()
    inv = invalidator(calls)
    inv.on_user_stream(UserStreamNotice("A", ACCOUNT_DATA, 5, ("@a:hs", "@b:hs")))
    inv.on_user_stream(UserStreamNotice("A", PUSH_RULES, 6, ("@a:hs",)))
    inv.on_user_stream(UserStreamNotice("A", TO_DEVICE, 9, ("@c:hs",)))
    inv.on_user_stream(UserStreamNotice("A", RECEIPTS, 9, ("@c:hs",)))  # not user-scoped
    inv.on_user_stream(UserStreamNotice("A", "no-such-stream", 9, ("@c:hs",)))
    assert calls.log == [
        ("invalidate_user", "@a:hs", 5),
        ("invalidate_user", "@b:hs", 5),
        ("invalidate_user", "@a:hs"),
        ("invalidate_user", "@c:hs", 9),
    ]


def test_receipts_drop_the_rooms_recent_receipts() -> None:
    calls = Calls()
    inv = invalidator(calls)
    inv.on_rooms_stream(RoomsStreamNotice("A", RECEIPTS, 4, ("!r:hs", "!s:hs")))
    inv.on_rooms_stream(RoomsStreamNotice("A", TYPING, 5, ("!r:hs",), {"!r:hs": ["@a:hs"]}))
    assert calls.log == [("invalidate_room", "!r:hs", 4), ("invalidate_room", "!s:hs", 4)]


@pytest.mark.parametrize(
    ("cache", "keys", "expected"),
    [
        (ACCESS_TOKENS, ("h1", "h2"), [("forget", ["h1", "h2"])]),
        (USERS, ("@a:hs",), [("forget_user", "@a:hs")]),
        (IGNORED_USERS, ("@a:hs",), [("invalidate_user", "@a:hs")]),
        (PUSH_RULES_CACHE, ("@a:hs",), [("invalidate_user", "@a:hs")]),
        (UNREAD_COUNTS, ("@a:hs", "@b:hs"), [("forget_counts", ["@a:hs", "@b:hs"])]),
        (EVENTS, ("$e",), [("invalidate_event", "$e")]),
        (PUSHERS, ("@a:hs",), [("reload_user", "@a:hs")]),
        (
            ONE_TIME_KEYS,
            (device_key("@a:hs", "DEV ICE"), "no-separator"),
            [("invalidate_devices", [("@a:hs", "DEV ICE")])],
        ),
        (
            ROOMS_PURGED,
            ("!r:hs",),
            [
                ("invalidate_purged_room", "!r:hs"),
                ("invalidate_purged_room", "!r:hs"),
                ("invalidate_room", "!r:hs", 0, ("membership", False)),
                ("invalidate_room", "!r:hs"),
            ],
        ),
        ("no-such-cache", ("x",), []),
    ],
)
async def test_cache_notices_drop_their_entries(
    cache: str, keys: tuple[str, ...], expected: list[tuple[Any, ...]]
) -> None:
    calls = Calls()
    await invalidator(calls).on_cache(CacheNotice("A", cache, keys))
    assert calls.log == expected


async def test_optional_owners_may_be_missing() -> None:
    calls = Calls()
    inv = CacheInvalidator(
        state=calls,
        events=calls,
        sync=calls,
        summaries=calls,
        tokens=calls,
        account_data=calls,
        push_rules=calls,
        unread=calls,
        memberships=calls,
        presence=calls,
    )
    await inv.on_cache(CacheNotice("A", PUSHERS, ("@a:hs",)))
    await inv.on_cache(CacheNotice("A", ONE_TIME_KEYS, (device_key("@a:hs", "D"),)))
    inv.on_user_stream(UserStreamNotice("A", TO_DEVICE, 1, ("@a:hs",)))
    inv.on_room_event(event(type="m.room.redaction", redacts="$t"))
    assert all(c[0] not in {"reload_user", "invalidate_devices"} for c in calls.log)


def test_device_keys_split_back() -> None:
    assert split_device_key(device_key("@a:hs", "D 1")) == ("@a:hs", "D 1")
    assert split_device_key("") is None


# -- publishing ------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Notice] = []

    def publish(self, notice: Notice) -> None:
        self.sent.append(notice)


def test_the_publisher_names_its_instance_and_drops_repeated_keys() -> None:
    recorder = Recorder()
    publisher = CachePublisher(recorder, "event_writer1")
    assert publisher.publishes
    publisher.stale(USERS, ["@a:hs", "@b:hs", "@a:hs"])
    assert recorder.sent == [CacheNotice("event_writer1", USERS, ("@a:hs", "@b:hs"))]


def test_the_publisher_sends_nothing_without_keys() -> None:
    recorder = Recorder()
    CachePublisher(recorder, "w").stale(USERS, [])
    assert recorder.sent == []


def test_the_single_process_publisher_tells_nobody() -> None:
    publisher = CachePublisher()
    assert not publisher.publishes
    assert publisher.instance == "master"
    publisher.stale(ACCESS_TOKENS, ["h"])  # nothing to see, nothing raised


def test_cache_names_are_distinct() -> None:
    assert len(CACHE_NAMES) == 10


def test_a_redaction_notice_keeps_its_target_on_the_wire() -> None:
    notice = event(type="m.room.redaction", redacts="$target", users=("@u:hs",))
    assert decode_notice(encode_notice(notice)) == notice


def test_a_room_event_notice_without_redacts_still_decodes() -> None:
    wire = orjson.loads(encode_notice(event()))
    del wire["redacts"]  # as a process without the field writes it
    assert decode_notice(orjson.dumps(wire)) == event()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"k": "cache", "instance": "A", "cache": "users", "keys": ["x"], "extra": 1}',
        b'{"k": "cache", "cache": "users"}',
        b'{"k": "ev", "instance": "A"}',
        b"[]",
        b"not json",
    ],
)
def test_bad_cache_and_room_notices_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_notice(raw)


# -- a read racing an invalidation is not cached ---------------------------------------


class _SlowTokens:
    """A token table whose reads wait for the test to let them finish."""

    def __init__(self) -> None:
        self.rows: dict[str, SimpleNamespace] = {}
        self.reads = 0
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def get_access_token(self, hashed: str) -> SimpleNamespace | None:
        self.reads += 1
        row = self.rows.get(hashed)
        self.started.set()
        await self.gate.wait()
        return row


async def test_a_token_read_racing_its_revocation_is_not_cached() -> None:
    tokens = _SlowTokens()
    hashed = token_hash("syt_secret")
    tokens.rows[hashed] = SimpleNamespace(
        user_id="@a:hs",
        device_id="D",
        is_guest=False,
        deactivated=False,
        locked=False,
        shadow_banned=False,
        limit_override=None,
        suspended=False,
        expires_ts=None,
        refreshed_from=None,
    )
    authenticator = Authenticator(SimpleNamespace(tokens=tokens), FakeClock())  # type: ignore[arg-type]
    racing = asyncio.create_task(authenticator.authenticate("syt_secret"))
    try:
        await asyncio.wait_for(tokens.started.wait(), 5)  # the read has begun
        del tokens.rows[hashed]  # revoked and committed (in another process) ...
        authenticator.forget([hashed])  # ... and its notice arrived
        tokens.gate.set()
        assert (await racing).user_id == "@a:hs"  # it read the row before the delete
    finally:
        racing.cancel()
    with pytest.raises(UnknownToken):
        await authenticator.authenticate("syt_secret")
    assert tokens.reads == 2
