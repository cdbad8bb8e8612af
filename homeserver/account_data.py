"""Account data, room tags and ignored users (client-server API: Client Config,
Room Tagging, Ignoring Users).

Each write takes the next position of the account-data stream and wakes the user's
long-polls; /sync reads what changed between two positions (``for_sync``).

With workers one process writes account data (``stream_writers.account_data``) and
publishes the users of each write; the others read the database and are told
(``apply_replicated``) whom to wake. A write made inside the server of another
process (the fully-read marker of a read-markers request, the ``m.push_rules`` change
of a push rule, a server notice's tag) goes to the writer through ``forwarder``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from homeserver.errors import BadJson, MatrixError, NotFound
from homeserver.notifier import Notifier
from homeserver.replication.ephemeral import StreamRole, StreamSource
from homeserver.replication.invalidation import IGNORED_USERS, CachePublisher
from homeserver.replication.notices import ACCOUNT_DATA, NoticePublisher, UserStreamNotice
from homeserver.streams import StreamIdGenerator
from homeserver.sync.extensions import SyncPass
from homeserver.sync.result import JoinedRoom, LeftRoom, SyncResult
from storage.account_data import AccountDataStore

# Types the server manages: clients read them but cannot set them (405 M_BAD_JSON).
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
# The content of a global type the server computes (m.push_rules: from the push rules).
ComputedContent = Callable[[str], Awaitable[dict[str, Any]]]
IGNORED_USER_LIST = "m.ignored_user_list"
PUSH_RULES = "m.push_rules"
TAG = "m.tag"
FULLY_READ = "m.fully_read"
MAX_TAG_BYTES = 255


class AccountDataForwarding(Protocol):
    """Where a process that does not write account data sends its writes
    (``ephemeral_endpoints.AccountDataForwarder``)."""

    async def put(
        self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]
    ) -> int: ...

    async def tag(
        self, user_id: str, room_id: str, tag: str, info: dict[str, Any] | None
    ) -> None: ...


@dataclass
class AccountDataSync:
    """What /sync shows of account data: global events and events per room."""

    global_events: list[dict[str, Any]] = field(default_factory=list)
    room_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class AccountDataService:
    def __init__(
        self,
        store: AccountDataStore,
        notifier: Notifier,
        stream: StreamSource,
        *,
        cache_publisher: CachePublisher | None = None,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        writer: str | None = None,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._stream = stream
        self._role = StreamRole.of(ACCOUNT_DATA, publisher, instance_name, writer)
        # a reader may have missed changes at or before this position (has_updates
        # then says yes once: the sync reads the database)
        self._complete_from = 0
        # set by the composition root where another process writes the stream
        self.forwarder: AccountDataForwarding | None = None
        # tells the other processes whose ignored users changed
        self._cache_publisher = cache_publisher or CachePublisher()
        self._ignored: dict[str, frozenset[str]] = {}
        self._ignored_epoch = 0  # moves on each invalidation from another process
        # user -> position of their latest write in this process
        self._user_last: dict[str, int] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._computed: dict[str, ComputedContent] = {}

    def serve_computed(self, data_type: str, content: ComputedContent) -> None:
        """Global account data of ``data_type`` is what ``content`` gives for the user,
        read when asked for (GET and /sync): the stored row of that type only records
        the position of its latest change (see :meth:`changed`)."""
        self._computed[data_type] = content

    @property
    def computed_types(self) -> frozenset[str]:
        """The global types served by :meth:`serve_computed` (m.push_rules)."""
        return frozenset(self._computed)

    async def changed(self, user_id: str, data_type: str) -> None:
        """A computed type changed: give it the next position, so the user's next
        /sync carries it."""
        await self.put(user_id, None, data_type, {})

    def current_position(self) -> int:
        return self._stream.current()

    # -- writing --------------------------------------------------------------------

    async def set_by_client(
        self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]
    ) -> None:
        """PUT .../account_data/{type}: anything but the server-managed types."""
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(405, "M_BAD_JSON", f"Cannot set {data_type} through this API")
        if data_type == IGNORED_USER_LIST:
            ignored = content.get("ignored_users", {})
            if not isinstance(ignored, dict):
                raise BadJson("'ignored_users' must be an object")
        await self.put(user_id, room_id, data_type, content)

    async def put(
        self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]
    ) -> int:
        """Store one entry (no checks: for the server's own types too); its position
        (on a process that does not write the stream: sent to the writer)."""
        if self.forwarder is not None and not self._role.writes:
            return await self.forwarder.put(user_id, room_id, data_type, content)
        stream = self._writing()
        async with self._locks[user_id]:
            position = stream.allocate()
            try:
                await self._store.put(user_id, room_id, data_type, content, position)
                self._role.users_changed(position, (user_id,))
            finally:
                stream.finish(position)
            if room_id is None and data_type == IGNORED_USER_LIST:
                self._ignored[user_id] = _ignored_of(content)
                self._cache_publisher.stale(IGNORED_USERS, [user_id])
            self._user_last[user_id] = position
        self._notifier.on_user_change(user_id)
        return position

    async def update(
        self,
        user_id: str,
        room_id: str | None,
        data_type: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Read-modify-write one entry atomically; ``change`` returns None to keep it."""
        stream = self._writing()
        async with self._locks[user_id]:
            position = stream.allocate()
            try:
                new = await self._store.update(user_id, room_id, data_type, change, position)
                if new is not None:
                    self._role.users_changed(position, (user_id,))
            finally:
                stream.finish(position)
            if new is not None:
                self._user_last[user_id] = position
                if room_id is None and data_type == IGNORED_USER_LIST:
                    self._ignored.pop(user_id, None)
                    self._ignored_epoch += 1
                    self._cache_publisher.stale(IGNORED_USERS, [user_id])
        if new is not None:
            self._notifier.on_user_change(user_id)
        return new

    def invalidate_user(self, user_id: str, position: int | None = None) -> None:
        """Another process wrote the user's account data (at ``position`` of the
        stream, when known): forget their cached ignored users, and let /sync see that
        they have updates."""
        self._ignored.pop(user_id, None)
        self._ignored_epoch += 1
        if position is not None and position > self._user_last.get(user_id, 0):
            self._user_last[user_id] = position

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: forget every
        user's ignored users and latest write (/sync asks the database whether
        their account data changed)."""
        self._ignored.clear()
        self._ignored_epoch += 1
        self._user_last.clear()

    # -- reading --------------------------------------------------------------------

    async def get(self, user_id: str, room_id: str | None, data_type: str) -> dict[str, Any]:
        computed = self._computed.get(data_type) if room_id is None else None
        if computed is not None:
            return await computed(user_id)
        content = await self._store.get(user_id, room_id, data_type)
        if content is None:
            raise NotFound("Account data not found")
        return content

    async def ignored_users(self, user_id: str) -> frozenset[str]:
        """The users ``user_id`` ignores (``m.ignored_user_list``), cached."""
        cached = self._ignored.get(user_id)
        if cached is not None:
            return cached
        epoch = self._ignored_epoch
        content = await self._store.get(user_id, None, IGNORED_USER_LIST)
        ignored = _ignored_of(content or {})
        if self._ignored_epoch == epoch:  # not invalidated while we read
            self._ignored.setdefault(user_id, ignored)
        return ignored

    async def ignoring(self, user_ids: Collection[str], sender: str) -> set[str]:
        """Those of ``user_ids`` who ignore ``sender`` (push evaluation: one cached
        lookup per user, the uncached read from storage in one query)."""
        known = {u: i for u in user_ids if (i := self._ignored.get(u)) is not None}
        missing = [u for u in user_ids if u not in known]
        if missing:
            epoch = self._ignored_epoch
            found = await self._store.get_global_many(missing, IGNORED_USER_LIST)
            for user_id in missing:
                content = found.get(user_id)
                known[user_id] = _NOBODY if content is None else _ignored_of(content)
                if self._ignored_epoch == epoch:  # not invalidated while we read
                    self._ignored.setdefault(user_id, known[user_id])
        return {u for u in user_ids if sender in known[u]}

    # -- tags (m.tag room account data) ----------------------------------------------

    async def get_tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        """The room's tags as the spec's schema has them (tag name -> Tag object with an
        optional numeric ``order``): ``m.tag`` can also be written whole through the
        account data API, so what does not fit is left out (a tag whose value is not an
        object) or dropped (an ``order`` that is not a number)."""
        content = await self._store.get(user_id, room_id, TAG)
        tags: dict[str, Any] = {}
        for name, info in _tags_of(content).items():
            if not isinstance(info, dict):
                continue
            if "order" in info and not _is_number(info["order"]):
                info = {k: v for k, v in info.items() if k != "order"}
            tags[name] = info
        return tags

    async def set_tag(self, user_id: str, room_id: str, tag: str, info: dict[str, Any]) -> None:
        if len(tag.encode()) > MAX_TAG_BYTES:
            raise MatrixError(400, "M_INVALID_PARAM", "Tag names are at most 255 bytes")
        if info.get("order", 0) is None:  # no order (the schema has no null)
            info = {k: v for k, v in info.items() if k != "order"}
        if "order" in info and not _is_number(info["order"]):
            raise BadJson("'order' must be a number")
        if self.forwarder is not None and not self._role.writes:
            await self.forwarder.tag(user_id, room_id, tag, info)
            return

        def add(current: dict[str, Any] | None) -> dict[str, Any]:
            tags = dict(_tags_of(current))
            tags[tag] = info
            return {**(current or {}), "tags": tags}

        await self.update(user_id, room_id, TAG, add)

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> None:
        if self.forwarder is not None and not self._role.writes:
            await self.forwarder.tag(user_id, room_id, tag, None)
            return

        def remove(current: dict[str, Any] | None) -> dict[str, Any] | None:
            tags = _tags_of(current)
            if tag not in tags:
                return None
            return {**(current or {}), "tags": {k: v for k, v in tags.items() if k != tag}}

        await self.update(user_id, room_id, TAG, remove)

    # -- /sync ----------------------------------------------------------------------

    def has_updates(self, user_id: str, since: int) -> bool:
        return self._user_last.get(user_id, 0) > since or since < self._complete_from

    async def for_sync(
        self, user_id: str, since: int | None, upto: int, room_ids: set[str] | None = None
    ) -> AccountDataSync:
        """Account data that changed in (since, upto] (everything when ``since`` is None),
        split into global events and per-room events (rooms limited to ``room_ids``)."""
        result = AccountDataSync()
        if since is not None and since >= upto:
            return result
        # an initial sync has every computed type; an incremental one those that changed
        computed = set(self._computed) if since is None else set()
        for record in await self._store.changed_for_user(user_id, since, upto):
            if record.room_id is None and record.data_type in self._computed:
                computed.add(record.data_type)
                continue
            event = {"type": record.data_type, "content": record.content}
            if record.room_id is None:
                result.global_events.append(event)
            elif room_ids is None or record.room_id in room_ids:
                result.room_events.setdefault(record.room_id, []).append(event)
        for data_type in sorted(computed):
            content = await self._computed[data_type](user_id)
            result.global_events.append({"type": data_type, "content": content})
        return result

    async def global_for_sync(
        self, user_id: str, since: int | None, upto: int
    ) -> list[dict[str, Any]]:
        """Global account data events changed in (since, upto] (all when since is None);
        reads no per-room rows, so it costs the same in 5 rooms as in 5,000."""
        if since is not None and since >= upto:
            return []
        events: list[dict[str, Any]] = []
        computed = set(self._computed) if since is None else set()
        for record in await self._store.changed_global(user_id, since, upto):
            if record.data_type in self._computed:
                computed.add(record.data_type)
            else:
                events.append({"type": record.data_type, "content": record.content})
        for data_type in sorted(computed):
            content = await self._computed[data_type](user_id)
            events.append({"type": data_type, "content": content})
        return events

    async def rooms_for_sync(
        self, user_id: str, room_ids: Collection[str], since: int | None, upto: int
    ) -> dict[str, list[dict[str, Any]]]:
        """room_id -> account data events of ``room_ids`` changed in (since, upto]
        (all of them when since is None)."""
        if not room_ids or (since is not None and since >= upto):
            return {}
        result: dict[str, list[dict[str, Any]]] = {}
        for record in await self._store.changed_in_rooms(user_id, room_ids, since, upto):
            assert record.room_id is not None
            event = {"type": record.data_type, "content": record.content}
            result.setdefault(record.room_id, []).append(event)
        return result

    async def rooms_with_changes(self, user_id: str, since: int, upto: int) -> set[str]:
        """The rooms with account data of the user changed in (since, upto]."""
        if since >= upto or (
            since >= self._complete_from and self._user_last.get(user_id, since + 1) <= since
        ):
            return set()
        return await self._store.rooms_changed(user_id, since, upto)

    # -- replication ------------------------------------------------------------------

    def _writing(self) -> StreamIdGenerator:
        """The stream's generator, or 500 when another process writes the stream."""
        self._role.check_writes()
        assert isinstance(self._stream, StreamIdGenerator)
        return self._stream

    def apply_replicated(self, notice: UserStreamNotice) -> None:
        """The account-data writer changed the data of ``notice.users`` (readers only)."""
        if self._role.writes:
            return
        for user_id in notice.users:
            self.invalidate_user(user_id, notice.position)
            self._notifier.on_user_change(user_id)

    def resync_replica(self) -> None:
        """After missed notices (readers only): a sync from before now reads the
        database once; cached ignored users are read again."""
        if self._role.writes:
            return
        self._ignored.clear()
        self._ignored_epoch += 1
        self._complete_from = self._stream.current()


_NOBODY: frozenset[str] = frozenset()


def _ignored_of(content: dict[str, Any]) -> frozenset[str]:
    ignored = content.get("ignored_users", {})
    return frozenset(ignored) if isinstance(ignored, dict) and ignored else _NOBODY


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tags_of(content: dict[str, Any] | None) -> dict[str, Any]:
    tags = (content or {}).get("tags", {})
    return tags if isinstance(tags, dict) else {}


class AccountDataSyncExtension:
    """``account_data`` of /sync (top level and per joined room); also hides what the
    user's ``m.ignored_user_list`` asks to hide: non-state timeline events of ignored
    senders and invites from them (client-server API: Ignoring Users)."""

    stream = "account_data"

    def __init__(self, service: AccountDataService) -> None:
        self._service = service

    def current_position(self) -> int:
        return self._service.current_position()

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        return self._service.has_updates(user_id, since)

    async def contribute(self, sync: SyncPass) -> None:
        joined = set(sync.joined_room_ids)
        data = await self._service.for_sync(
            sync.user_id,
            sync.since_position(self.stream),
            sync.upto_position(self.stream),
            joined | set(sync.result.leave),
        )
        global_filter = sync.filter.account_data
        sync.result.account_data.extend(
            e for e in data.global_events if global_filter.allows_type(e["type"])
        )
        room_filter = sync.filter.room.account_data
        for room_id, events in data.room_events.items():
            kept = [e for e in events if room_filter.allows_type(e["type"])]
            if not kept or not room_filter.allows_room(room_id):
                continue
            if room_id in joined:
                sync.result.joined_room(room_id).account_data.extend(kept)
            else:
                sync.result.leave[room_id].account_data.extend(kept)
        ignored = await self._service.ignored_users(sync.user_id)
        if ignored:
            hide_ignored(sync.result, sync.user_id, ignored)


def hide_ignored(result: SyncResult, user_id: str, ignored: frozenset[str]) -> None:
    """Drop non-state timeline events sent by ignored users and their invites."""
    rooms: list[JoinedRoom | LeftRoom] = [*result.join.values(), *result.leave.values()]
    for room in rooms:
        room.timeline = [
            e for e in room.timeline if "state_key" in e or e.get("sender") not in ignored
        ]
    for room_id, stripped in list(result.invite.items()):
        inviter = _inviter(stripped, user_id)
        if inviter is not None and inviter in ignored:
            del result.invite[room_id]


def _inviter(stripped: list[dict[str, Any]], user_id: str) -> str | None:
    for event in stripped:
        content = event.get("content")
        if (
            event.get("type") == "m.room.member"
            and event.get("state_key") == user_id
            and isinstance(content, dict)
            and content.get("membership") == "invite"
        ):
            sender = event.get("sender")
            return sender if isinstance(sender, str) else None
    return None
