"""AUDIT_PLACEHOLDER"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from homeserver.replication.notices import (
    ACCOUNT_DATA,
    PUSH_RULES,
    TO_DEVICE,
    CacheNotice,
    NoPublisher,
    NoticePublisher,
    RoomEventNotice,
    UserStreamNotice,
)

# -- the caches other processes are told about (CacheNotice.cache) ---------------------

ACCESS_TOKENS = "access_tokens"  # keys: token hashes (revoked)
USERS = "users"  # keys: user IDs (deactivated, locked, suspended, shadow-banned ...)
IGNORED_USERS = "ignored_users"  # keys: user IDs (m.ignored_user_list changed)
PUSH_RULES_CACHE = "push_rules"  # keys: user IDs (their rules changed)
UNREAD_COUNTS = "unread_counts"  # keys: user IDs (notified, or read)
ONE_TIME_KEYS = "one_time_keys"  # keys: device_key(user, device) (uploaded or claimed)
EVENTS = "events"  # keys: event IDs (content changed outside the stream: expiry, censoring)
ROOMS_PURGED = "rooms_purged"  # keys: room IDs (history or the whole room purged)
PUSHERS = "pushers"  # keys: user IDs (a pusher set or removed)

CACHE_NAMES = frozenset(
    {
        ACCESS_TOKENS,
        USERS,
        IGNORED_USERS,
        PUSH_RULES_CACHE,
        UNREAD_COUNTS,
        ONE_TIME_KEYS,
        EVENTS,
        ROOMS_PURGED,
        PUSHERS,
    }
)


def device_key(user_id: str, device_id: str) -> str:
    """The key of one device in a notice (user IDs hold no space)."""
    return f"{user_id} {device_id}"


def split_device_key(key: str) -> tuple[str, str] | None:
    user_id, sep, device_id = key.partition(" ")
    return (user_id, device_id) if sep else None


class CachePublisher:
    """What a writing service calls once its write committed, so that every other
    process drops the entries it made stale. Wraps the process's NoticePublisher and
    instance name; the default (a single process) tells nobody."""

    def __init__(self, publisher: NoticePublisher | None = None, instance: str = "master") -> None:
        self._publisher: NoticePublisher = publisher or NoPublisher()
        self.instance = instance

    @property
    def publishes(self) -> bool:
        return not isinstance(self._publisher, NoPublisher)

    def stale(self, cache: str, keys: Iterable[str] = ()) -> None:
        """Entries ``keys`` of ``cache`` are stale everywhere (nothing: none is)."""
        if isinstance(self._publisher, NoPublisher):
            return
        found = tuple(dict.fromkeys(keys))
        if found:
            self._publisher.publish(CacheNotice(self.instance, cache, found))


# -- what the invalidator needs of each owner (narrow, so tests can fake them) --------


class RoomStateCaches(Protocol):  # storage.state.StateStore
    def invalidate_room(self, room_id: str, members: Collection[str] = ()) -> None: ...

    def invalidate_purged_room(self, room_id: str) -> None: ...


class EventCaches(Protocol):  # storage.events.EventStore
    def invalidate_event(self, event_id: str) -> None: ...

    def invalidate_room(self, room_id: str) -> None: ...

    def invalidate_purged_room(self, room_id: str) -> None: ...


class SyncCaches(Protocol):  # storage.sync.SyncStore
    def invalidate_room(self, room_id: str, position: int, *, membership: bool) -> None: ...


class SummaryCaches(Protocol):  # storage.room_summaries.RoomSummaryStore
    def invalidate_room(self, room_id: str) -> None: ...


class TokenCaches(Protocol):  # homeserver.auth.Authenticator
    def forget(self, token_hashes: list[str]) -> None: ...

    def forget_user(self, user_id: str) -> None: ...


class AccountDataCaches(Protocol):  # homeserver.account_data.AccountDataService
    def invalidate_user(self, user_id: str, position: int | None = None) -> None: ...


class PushRuleCaches(Protocol):  # homeserver.push.rules_service.PushRulesService
    def invalidate_user(self, user_id: str) -> None: ...


class UnreadCaches(Protocol):  # homeserver.push.notifications.PushEvaluator
    def forget_counts(self, user_ids: Collection[str]) -> None: ...


class PusherCaches(Protocol):  # homeserver.push.pushers.PusherPool
    async def reload_user(self, user_id: str) -> None: ...


class MembershipHistoryCaches(Protocol):  # homeserver.sync.memberships.MembershipCache
    def invalidate_user(self, user_id: str) -> None: ...


class PresenceCaches(Protocol):  # homeserver.presence.PresenceService
    def membership_changed(self, user_id: str) -> None: ...


class RetentionCaches(Protocol):  # homeserver.retention.service.RetentionPolicies
    def invalidate_event(self, event_id: str) -> None: ...


class KeyCountCaches(Protocol):  # homeserver.e2ee.keys.E2eKeyService
    def invalidate_devices(self, devices: Collection[tuple[str, str]]) -> None: ...


class ToDeviceCaches(Protocol):  # homeserver.to_device.ToDeviceService
    def invalidate_user(self, user_id: str, position: int) -> None: ...


MEMBER = "m.room.member"
REDACTION = "m.room.redaction"
RETENTION = "m.room.retention"


class CacheInvalidator:
    """Applies the notices of the other processes to this process's caches.

    Stream notices (``on_room_event``, ``on_user_stream``) are to be applied once this
    process's view of the stream has reached their position (the caller sees to it);
    cache notices (``on_cache``) on receipt. Every handler only drops entries (or
    raises a "changed at" mark): the next read goes to the database.
    """

    def __init__(
        self,
        *,
        state: RoomStateCaches,
        events: EventCaches,
        sync: SyncCaches,
        summaries: SummaryCaches,
        tokens: TokenCaches,
        account_data: AccountDataCaches,
        push_rules: PushRuleCaches,
        unread: UnreadCaches,
        memberships: MembershipHistoryCaches,
        presence: PresenceCaches,
        to_device: ToDeviceCaches | None = None,
        pushers: PusherCaches | None = None,
        retention: RetentionCaches | None = None,
        key_counts: KeyCountCaches | None = None,
    ) -> None:
        self._state = state
        self._events = events
        self._sync = sync
        self._summaries = summaries
        self._tokens = tokens
        self._account_data = account_data
        self._push_rules = push_rules
        self._unread = unread
        self._memberships = memberships
        self._presence = presence
        self._to_device = to_device
        self._pushers = pushers
        self._retention = retention
        self._key_counts = key_counts

    def on_room_event(self, notice: RoomEventNotice) -> None:
        """A room event another process committed."""
        room_id = notice.room_id
        # an event we hold as an outlier may have entered the timeline (de-outliered)
        self._events.invalidate_event(notice.event_id)
        self._events.invalidate_room(room_id)
        self._summaries.invalidate_room(room_id)  # bump stamp, and state it shows
        is_member = notice.type == MEMBER and notice.state_key is not None
        self._sync.invalidate_room(room_id, notice.position, membership=is_member)
        if notice.state_key is not None:
            members: tuple[str, ...] = ()
            if is_member:
                assert notice.state_key is not None
                members = (notice.state_key,)
            self._state.invalidate_room(room_id, members)
            if notice.type == RETENTION and self._retention is not None:
                self._retention.invalidate_event(notice.event_id)
        if is_member:
            assert notice.state_key is not None
            self._memberships.invalidate_user(notice.state_key)
            self._presence.membership_changed(notice.state_key)
        if notice.type == REDACTION and notice.redacts is not None:
            self._events.invalidate_event(notice.redacts)
            if self._retention is not None:
                self._retention.invalidate_event(notice.redacts)

    def on_user_stream(self, notice: UserStreamNotice) -> None:
        """A change of a per-user stream another process wrote."""
        for user_id in notice.users:
            if notice.stream == ACCOUNT_DATA:
                self._account_data.invalidate_user(user_id, notice.position)
            elif notice.stream == PUSH_RULES:
                self._push_rules.invalidate_user(user_id)
            elif notice.stream == TO_DEVICE and self._to_device is not None:
                self._to_device.invalidate_user(user_id, notice.position)

    async def on_cache(self, notice: CacheNotice) -> None:
        """Entries of a named cache another process made stale."""
        cache, keys = notice.cache, notice.keys
        if cache == ACCESS_TOKENS:
            self._tokens.forget(list(keys))
        elif cache == USERS:
            for user_id in keys:
                self._tokens.forget_user(user_id)
        elif cache == IGNORED_USERS:
            for user_id in keys:
                self._account_data.invalidate_user(user_id)
        elif cache == PUSH_RULES_CACHE:
            for user_id in keys:
                self._push_rules.invalidate_user(user_id)
        elif cache == UNREAD_COUNTS:
            self._unread.forget_counts(keys)
        elif cache == ONE_TIME_KEYS:
            if self._key_counts is not None:
                devices = [d for d in map(split_device_key, keys) if d is not None]
                self._key_counts.invalidate_devices(devices)
        elif cache == EVENTS:
            for event_id in keys:
                self._events.invalidate_event(event_id)
        elif cache == ROOMS_PURGED:
            for room_id in keys:
                self._events.invalidate_purged_room(room_id)
                self._state.invalidate_purged_room(room_id)
                self._sync.invalidate_room(room_id, 0, membership=False)
                self._summaries.invalidate_room(room_id)
        elif cache == PUSHERS:
            if self._pushers is not None:
                for user_id in keys:
                    await self._pushers.reload_user(user_id)
