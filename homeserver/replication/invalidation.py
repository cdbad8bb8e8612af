"""Every process's caches, invalidated from the other processes' writes (issue 17).

With workers, several processes share one PostgreSQL. Each keeps in-memory caches
that its own writes keep in step (after-commit callbacks); a write in *another*
process reaches them only through the notices of ``notices.py``. ``CacheInvalidator``
applies those notices to one process's caches; ``CachePublisher`` is what a writing
service calls for the writes no stream carries. Invalidation only drops entries (or
raises a "changed at" mark): the next read goes to the database. Reads that race an
invalidation are not cached (each owner keeps a generation or epoch for that).

Audit (``grep -rn "OrderedDict()\\|lru_cache\\|_cache\\b\\|self\\._.*: dict"`` over
``homeserver storage client_api federation``, then each hit read). "RoomEvent",
"UserStream" and "Cache" name the notice that invalidates; ``invalidate_*`` the owner's
method it calls.

A. Stale after another process's room event: ``on_room_event(RoomEventNotice)``

=================================  ==================  =======================================
cache (owner)                      key                 stale after -> invalidated by
=================================  ==================  =======================================
StateStore._current,               room                any state event (state_key set) ->
``_current_groups``, ``_members``,                     ``StateStore.invalidate_room(room,
``_counts``, ``_joined_servers``                       members)``: also bumps
(storage/state.py)                                     ``member_generation``, which every cache
                                                       below keyed by it follows
StateStore._user_rooms             user                a membership of the user -> the same
                                                       call, ``members=(state_key,)``
SyncStore._heroes                  room (generation)   state change -> generation moved, and
(storage/sync.py)                                      ``SyncStore.invalidate_room`` drops it
RecentRoomEvents._rooms,           room                any event of the room (this process
``_member_changes``                                    cannot follow another writer's commits)
(storage/sync.py)                                      -> ``SyncStore.invalidate_room``: entry
                                                       dropped; a membership is recorded for
                                                       ``memberships_unchanged``
RoomSummaryStore._cache            room                any event (bump stamp), state (name,
(storage/room_summaries.py)                            counts ...) -> ``invalidate_room``
EventStore._cache                  event ID            de-outliered (same ID) ->
(storage/events.py)                                    ``invalidate_if_cached``; redacted ->
                                                       ``invalidate_event(notice.redacts)``
EventStore._extremities            room                any event -> ``invalidate_room`` (only
                                                       the room's writer reads them)
MembershipCache._entries           user                a membership of the user ->
(homeserver/sync/memberships.py)                       ``invalidate_user`` (not only the
                                                       notifier's per-user marker)
PresenceService._rooms_of          user                a membership of the user ->
(homeserver/presence.py)                               ``membership_changed``
ServiceInterest._members           (service, room)     keyed by ``member_generation``: follows
(homeserver/appservice/interest)                       ``StateStore.invalidate_room``
RetentionPolicies._by_event        event ID            the m.room.retention event redacted ->
(homeserver/retention/service.py)                      ``invalidate_event``
Notifier._room_last_change         room                any event -> the lead's notifier fan-out
=================================  ==================  =======================================

B. Stale after another writer's per-user stream: ``on_user_stream(UserStreamNotice)``

=================================  ==================  =======================================
AccountDataService._user_last,     user                account_data stream ->
``_ignored``                                           ``invalidate_user(user, position)``
ToDeviceService._user_last         user                to_device stream -> ``invalidate_user``
PushRulesService._compiled         user                push_rules stream -> ``invalidate_user``
=================================  ==================  =======================================

C. Stale after a write no stream carries: ``on_cache(CacheNotice)``, published by the
writing service through its ``CachePublisher`` (``cache_publisher=`` keyword, default a
no-op: single-process behaviour unchanged)

=================================  ==================  =======================================
Authenticator._cache               token hash          logout, logout/all, device deletion,
(homeserver/auth.py)                                   login replacing a device, refresh,
                                                       password change logging out, guest
                                                       upgrade, deactivation -> ACCESS_TOKENS
                                                       from ``SessionService.forget_tokens``
                                                       (every revocation goes through it):
                                                       ``Authenticator.forget``
Authenticator._cache (by user),    user                deactivation, lock, suspension, shadow
``_registered``                                        ban, rate-limit override (flags the
                                                       cached requesters carry) -> USERS from
                                                       ``SessionService.forget_user``:
                                                       ``Authenticator.forget_user``
AccountDataService._ignored        user                m.ignored_user_list written ->
(homeserver/account_data.py)                           IGNORED_USERS: ``invalidate_user``
PushRulesService._compiled         user                a rule set, removed, enabled, actions
(homeserver/push/rules_service)                        -> PUSH_RULES_CACHE: ``invalidate_user``
PushEvaluator._unread_cache        user                notified by an event, sent an event
(homeserver/push/notifications)                        (reads), read receipt, purge ->
                                                       UNREAD_COUNTS: ``forget_counts``
E2eKeyService._sync_keys           (user, device)      one-time/fallback keys uploaded or
(homeserver/e2ee/keys.py)                              claimed -> ONE_TIME_KEYS:
                                                       ``invalidate_devices``
PusherPool._pushers                (user, app, key)    pusher set or removed, device deleted
(homeserver/push/pushers.py)                           -> PUSHERS: ``reload_user`` (reads the
                                                       user's pushers again)
EventStore._cache                  event ID            expired self-destructing message,
                                                       censored redaction -> EVENTS:
                                                       ``invalidate_event``
EventStore (events of the room,    room                history or whole-room purge ->
``_room_versions``), StateStore                        ROOMS_PURGED: ``invalidate_purged_room``
(room, its members' rooms),                            on both, ``SyncStore.invalidate_room``,
SyncStore, RoomSummaryStore                            ``RoomSummaryStore.invalidate_room``
=================================  ==================  =======================================

D. Never stale: keyed by what never changes

- state groups: ``StateStore._groups`` / ``_parents``, ``SyncStore._groups``,
  ``HistoryVisibility._hv_by_group`` (homeserver/rooms/visibility.py),
  ``PushEvaluator._room_states`` (push state per state group). A purge rewrites some
  groups' delta chains (same state): ``StateStore._chains`` only sizes the next delta
  on the room's writer, and ``invalidate_purged_room`` forgets the room's base group.
- ``EventStore._room_versions`` (a room's version never changes; purge: C).
- ``SyncService._filters``: a filter ID names one filter for good.
- ``lru_cache`` of pure functions: push rule/condition compilation
  (homeserver/push/rules.py, conditions.py), SQL placeholder translation
  (storage/postgres.py, sqlite.py), server ACL patterns (federation/server_acl.py;
  the ACL itself is room state: A).
- ``EventCreator._recent_txns`` (transaction ID -> event ID: a room's sends all go to
  its writer, and the database answers a miss).
- not cached in memory at all: profiles, devices, remote device lists, account and
  token rows, room aliases and the directory, the user directory (every store but
  events, state, sync and room summaries reads the database each time);
  ``RoomAliases`` lives for one appservice delivery batch; appservice registrations
  are configuration.

E. Per process by design (nothing another process writes can make them wrong)

- sliding sync connections, lazy-loaded members sent per device (``SentMembers``),
  to-device ``_unacked``/``_cleaned``, space hierarchy pagination sessions: per
  connection or device; sync is routed sticky by access token (forgetting costs a
  redundant member event or an initial response, which the spec allows).
- ``SessionService._seen`` (last-seen write throttle), rate limit buckets (per process,
  as Synapse), room lanes and healing, federation backoff (``_retry_at``, backfill
  ``_failed``), well-known and server key caches (time-bounded, keyed by key ID), URL
  preview cache (time-bounded), in-flight sets (media uploads and thumbnails, remote
  device list resyncs, upgrades, guest eviction, consent notices).
- admin task records (purge status) and shared-secret registration nonces: kept by
  the process that serves ``/_synapse/admin`` (routed to main, as Synapse).
- appservice delivery positions (``AppServiceDelivery._stored_positions``: the one
  instance of ``notify_appservices_from_worker``) and third-party protocol answers
  (``ThirdPartyLookups._protocols``, time-bounded).

F. Stream indices fed by stream notices (the core's positions and the lead's fan-out)

- ``Notifier._room_last_change`` / ``_user_last_change``, typing, presence
  ``_states`` / ``_changes`` / ``_room_changed``, device lists ``_room_last_change`` /
  ``_user_last_change``: they hold the stream data itself (or where it last moved),
  so they are advanced by the stream notices (``RoomsStreamNotice``,
  ``UserStreamNotice``, ``StreamPosition``) where the lead wires the notifier, not
  dropped here. Those whose index is one number per user or room are raised here:
  to-device and account data by ``on_user_stream`` (B), receipts
  (``ReceiptService._room_last``, and ``_recent`` dropped) by ``on_rooms_stream``.

G. After Redis comes back: ``on_resync()``

Notices sent while Redis was away are lost (positions are re-read from the database,
notices are not replayed). So after every reconnect ``on_resync`` empties every cache
of A, B and C (each owner's ``clear_caches``: generations and epochs move too, so a
read in flight is not cached), reloads the pushers stored, and makes the indices of
F that answer "nothing changed" forget (``forget_changes``: the notifier's
``_room_last_change``, re-seeded from storage on next use, to-device's and receipts'
``_user_last``/``_room_last``, whose "known since" floor moves up to the resynced
position; ``RecentRoomEvents`` likewise). D and E stay.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from homeserver.replication.notices import (
    ACCOUNT_DATA,
    PUSH_RULES,
    RECEIPTS,
    TO_DEVICE,
    CacheNotice,
    NoPublisher,
    NoticePublisher,
    RoomEventNotice,
    RoomsStreamNotice,
    UserStreamNotice,
)
from storage.events import StoredEvent

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
# no keys: the sender lost notices while Redis was away from it alone (the others
# stayed connected, so they never resynced): every process drops what may be stale
EVERYTHING = "everything"

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
        EVERYTHING,
    }
)


MEMBER = "m.room.member"
REDACTION = "m.room.redaction"
RETENTION = "m.room.retention"


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


def room_event_notice(
    instance: str, stored: StoredEvent, users: Collection[str] = ()
) -> RoomEventNotice:
    """What an event writer publishes for an event it persisted at a stream position
    (``users``: those it touches directly; a membership's target is always among
    them), with ``redacts`` filled in so the readers drop the redacted event."""
    event = stored.event
    assert stored.stream_ordering is not None
    touched = list(users)
    if event.type == MEMBER and event.state_key is not None and event.state_key not in touched:
        touched.append(event.state_key)
    return RoomEventNotice(
        instance,
        event.room_id,
        stored.stream_ordering,
        event.event_id,
        event.type,
        event.sender,
        event.state_key,
        tuple(touched),
        event.redacts if event.type == REDACTION else None,
    )


# -- what the invalidator needs of each owner (narrow, so tests can fake them) --------


class RoomStateCaches(Protocol):  # storage.state.StateStore
    def clear_caches(self) -> None: ...

    def invalidate_room(self, room_id: str, members: Collection[str] = ()) -> None: ...

    def invalidate_purged_room(self, room_id: str) -> None: ...


class EventCaches(Protocol):  # storage.events.EventStore
    def clear_caches(self) -> None: ...

    def invalidate_event(self, event_id: str) -> None: ...

    def invalidate_if_cached(self, event_id: str) -> None: ...

    def invalidate_room(self, room_id: str) -> None: ...

    def invalidate_purged_room(self, room_id: str) -> None: ...


class SyncCaches(Protocol):  # storage.sync.SyncStore
    def clear_caches(self) -> None: ...

    def invalidate_room(self, room_id: str, position: int, *, membership: bool) -> None: ...


class SummaryCaches(Protocol):  # storage.room_summaries.RoomSummaryStore
    def clear_caches(self) -> None: ...

    def invalidate_room(self, room_id: str) -> None: ...


class TokenCaches(Protocol):  # homeserver.auth.Authenticator
    def clear_caches(self) -> None: ...

    def forget(self, token_hashes: list[str]) -> None: ...

    def forget_user(self, user_id: str) -> None: ...


class AccountDataCaches(Protocol):  # homeserver.account_data.AccountDataService
    def clear_caches(self) -> None: ...

    def invalidate_user(self, user_id: str, position: int | None = None) -> None: ...


class PushRuleCaches(Protocol):  # homeserver.push.rules_service.PushRulesService
    def clear_caches(self) -> None: ...

    def invalidate_user(self, user_id: str) -> None: ...


class UnreadCaches(Protocol):  # homeserver.push.notifications.PushEvaluator
    def clear_caches(self) -> None: ...

    def forget_counts(self, user_ids: Collection[str]) -> None: ...


class ReceiptCaches(Protocol):  # homeserver.receipts.ReceiptService
    def forget_changes(self) -> None: ...

    def invalidate_room(self, room_id: str, position: int) -> None: ...


class PusherCaches(Protocol):  # homeserver.push.pushers.PusherPool
    async def reload_all(self) -> None: ...

    async def reload_user(self, user_id: str) -> None: ...


class MembershipHistoryCaches(Protocol):  # homeserver.sync.memberships.MembershipCache
    def clear_caches(self) -> None: ...

    def invalidate_user(self, user_id: str) -> None: ...


class PresenceCaches(Protocol):  # homeserver.presence.PresenceService
    def clear_caches(self) -> None: ...

    def membership_changed(self, user_id: str) -> None: ...


class RetentionCaches(Protocol):  # homeserver.retention.service.RetentionPolicies
    def clear_caches(self) -> None: ...

    def invalidate_event(self, event_id: str) -> None: ...


class KeyCountCaches(Protocol):  # homeserver.e2ee.keys.E2eKeyService
    def clear_caches(self) -> None: ...

    def invalidate_devices(self, devices: Collection[tuple[str, str]]) -> None: ...


class ToDeviceCaches(Protocol):  # homeserver.to_device.ToDeviceService
    def forget_changes(self) -> None: ...

    def invalidate_user(self, user_id: str, position: int) -> None: ...


class RoomChanges(Protocol):  # homeserver.notifier.Notifier
    def forget_changes(self) -> None: ...


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
        receipts: ReceiptCaches | None = None,
        pushers: PusherCaches | None = None,
        retention: RetentionCaches | None = None,
        key_counts: KeyCountCaches | None = None,
        changes: RoomChanges | None = None,
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
        self._receipts = receipts
        self._pushers = pushers
        self._retention = retention
        self._key_counts = key_counts
        self._changes = changes

    def on_room_event(self, notice: RoomEventNotice) -> None:
        """A room event another process committed."""
        room_id = notice.room_id
        # an event we hold as an outlier may have entered the timeline (de-outliered)
        self._events.invalidate_if_cached(notice.event_id)
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

    def on_rooms_stream(self, notice: RoomsStreamNotice) -> None:
        """A change of a per-room ephemeral stream another process wrote (receipts:
        their recent receipts per room; typing lives in the writer's memory and is
        carried by the notice's data, for the stream fan-out to apply)."""
        if notice.stream == RECEIPTS and self._receipts is not None:
            for room_id in notice.rooms:
                self._receipts.invalidate_room(room_id, notice.position)

    async def on_cache(self, notice: CacheNotice) -> None:
        """Entries of a named cache another process made stale."""
        cache, keys = notice.cache, notice.keys
        if cache == EVERYTHING:
            await self.on_resync()
        elif cache == ACCESS_TOKENS:
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

    async def on_resync(self) -> None:
        """This process was cut off from the other processes' notices (Redis went
        away) and is connected again: drop every entry a notice could have dropped
        meanwhile (A, B, C and the per-user and per-room indices of F above; D and E
        stay), and forget where each room last changed. Everything read from here on
        comes from the database. Called after the positions were resynced, before the
        long-polls are woken."""
        self._state.clear_caches()
        self._events.clear_caches()
        self._sync.clear_caches()
        self._summaries.clear_caches()
        self._tokens.clear_caches()
        self._account_data.clear_caches()
        self._push_rules.clear_caches()
        self._unread.clear_caches()
        self._memberships.clear_caches()
        self._presence.clear_caches()
        for owner in (self._retention, self._key_counts):
            if owner is not None:
                owner.clear_caches()
        for index in (self._to_device, self._receipts, self._changes):
            if index is not None:
                index.forget_changes()
        if self._pushers is not None:
            await self._pushers.reload_all()  # last: it reads the database
