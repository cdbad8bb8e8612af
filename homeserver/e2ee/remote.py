"""Remote users' device lists and cross-signing keys, cached while we track them.

Spec: server-server "Device Management" (``m.device_list_update``, ``GET
/user/devices/{userId}``) and "End-to-End Encryption" (``m.signing_key_update``).

We *track* a remote user while they are joined to a room one of our users is joined
to: only then does their server keep sending us their device list updates. For a
tracked user :meth:`RemoteDeviceLists.cached` serves ``/keys/query`` from the cache,
filling it first by a resync (``/user/devices``, through the ``fetcher`` federation
sets) when we hold no copy or a stale one. An update EDU is applied when its
``prev_id`` says it follows our copy (every ``prev_id`` at or below our
``stream_id``: our copy already holds what it builds on), else the copy goes stale
and the list is synced again in a task of its own (the inbound transaction does not
wait on the user's server). Local users sharing a room with that user see in
``device_lists.changed`` each applied update and whatever a resync changed (or the
update, when the resync fails). A copy goes stale when we miss updates, a resync
fails or we stop tracking the user (a membership change of theirs or of ours,
:meth:`on_event_persisted`).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from homeserver.clock import Clock
from homeserver.e2ee.device_lists import DeviceListService
from homeserver.e2ee.keys import unsigned_device_info
from homeserver.e2ee.validation import check_cross_signing_key, is_signed_by, public_key_of
from homeserver.errors import MatrixError
from homeserver.events import server_name_of
from storage.database import Transaction
from storage.events import StoredEvent
from storage.remote_devices import RemoteDevice
from storage.stores import Stores

logger = logging.getLogger(__name__)

# (user_id, timeout_s) -> the body of GET /user/devices/{userId} on the user's server;
# raises on failure.
DeviceListFetcher = Callable[[str, float], Awaitable[Any]]

RESYNC_TIMEOUT_S = 10.0
CROSS_SIGNING_FIELDS = {"master_key": "master", "self_signing_key": "self_signing"}


@dataclass(frozen=True)
class CachedKeys:
    """A tracked remote user's keys in ``/keys/query`` shape."""

    device_keys: dict[str, dict[str, Any]]
    master_key: dict[str, Any] | None
    self_signing_key: dict[str, Any] | None


def _server_of(user_id: Any) -> str | None:
    if not isinstance(user_id, str):
        return None
    try:
        return server_name_of(user_id)
    except ValueError:
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def remote_device_keys(keys: Any) -> dict[str, Any] | None:
    """The device keys a remote server gave for one of its devices, as it gave them
    (its own ``unsigned`` aside), or None when it gave no object.

    As for local uploads, the server does not judge the keys: the clients verify the
    device's signature before trusting them, and Synapse keeps what the origin sends.
    """
    if not isinstance(keys, dict):
        return None
    return {k: v for k, v in keys.items() if k != "unsigned"}


def checked_cross_signing_keys(
    body: dict[str, Any], user_id: str, master: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The valid ``master_key`` / ``self_signing_key`` of a body, by key type; a
    self-signing key must be signed by the (new or given) master key."""
    out: dict[str, dict[str, Any]] = {}
    for field, key_type in CROSS_SIGNING_FIELDS.items():
        key = body.get(field)
        if key is None:
            continue
        try:
            check_cross_signing_key(key, user_id, key_type, field)
        except MatrixError:
            continue
        out[key_type] = key
    signer = out.get("master", master)
    ssk = out.get("self_signing")
    if ssk is not None:
        pub = None if signer is None else public_key_of(signer)
        if pub is None or not is_signed_by(ssk, user_id, f"ed25519:{pub}", pub):
            del out["self_signing"]
    return out


class RemoteDeviceLists:
    def __init__(
        self, server_name: str, stores: Stores, device_lists: DeviceListService, clock: Clock
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._store = stores.remote_devices
        self._device_lists = device_lists
        self._clock = clock
        # one lock per user while in use: EDUs and resyncs of a user never interleave
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.fetcher: DeviceListFetcher | None = None
        # resyncs asked for by update EDUs, run in tasks of their own; a user is in
        # ``_resync_waiting`` until their task starts fetching
        self._resync_tasks: set[asyncio.Task[None]] = set()
        self._resync_waiting: set[str] = set()
        # users whose list is being fetched (by a resync task or a query)
        self._fetching: set[str] = set()

    def _is_mine(self, user_id: str) -> bool:
        return _server_of(user_id) == self._server_name

    def _lock(self, user_id: str) -> asyncio.Lock:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[user_id] = lock
        return lock

    # -- tracking ---------------------------------------------------------------------

    async def is_tracked(self, user_id: str) -> bool:
        """Whether the remote user is joined to a room one of our users is joined to."""
        if self._is_mine(user_id):
            return False
        state = self._stores.state
        joined = [r for r, m in (await state.rooms_for_user(user_id)).items() if m == "join"]
        if not joined:
            return False
        members = await state.current_members_many(joined)
        return any(
            m == "join" and self._is_mine(u) for room in joined for u, m in members[room].items()
        )

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """``persisted_hooks`` entry: a membership change that may end our tracking of
        remote users makes their cached lists stale."""
        event = stored.event
        if event.type != "m.room.member" or not event.state_key or stored.outlier:
            return
        if event.content.get("membership") == "join":
            return
        if self._is_mine(event.state_key):
            members = await self._stores.state.current_members(event.room_id)
            candidates = [u for u, m in members.items() if m == "join" and not self._is_mine(u)]
        else:
            candidates = [event.state_key]
        untracked = [u for u in candidates if not await self.is_tracked(u)]
        await self._store.mark_stale(untracked)

    # -- reading ----------------------------------------------------------------------

    async def cached(
        self, user_id: str, device_ids: Collection[str] = (), timeout_s: float = RESYNC_TIMEOUT_S
    ) -> CachedKeys | None:
        """The user's keys from the cache (resynced first when needed), or None when
        we do not track the user or cannot get their list: ask their server then."""
        if not await self.is_tracked(user_id):
            return None
        async with self._lock(user_id):
            current = await self._store.get_list(user_id)
            if current is None or current.stale:
                if not await self._resync_locked(user_id, timeout_s):
                    return None
        wanted = set(device_ids)
        devices: dict[str, dict[str, Any]] = {}
        for device in await self._store.get_devices(user_id):
            if device.keys is None or (wanted and device.device_id not in wanted):
                continue
            keys = dict(device.keys)
            keys["unsigned"] = unsigned_device_info(device.display_name)
            devices[device.device_id] = keys
        cross = await self._store.get_cross_signing_keys(user_id)
        return CachedKeys(devices, cross.get("master"), cross.get("self_signing"))

    # -- resync -----------------------------------------------------------------------

    async def resync(self, user_id: str, timeout_s: float = RESYNC_TIMEOUT_S) -> bool:
        """Fetch the user's whole device list from their server; True on success."""
        async with self._lock(user_id):
            return await self._resync_locked(user_id, timeout_s)

    async def _resync_locked(self, user_id: str, timeout_s: float) -> bool:
        """Replace our copy with the list the user's server gives; True on success.

        What differs from our copy is a change of the user's devices, which local
        users sharing a room with them see in ``device_lists.changed`` (as after an
        update EDU): a first copy, or one that missed updates, tells them to query
        the user's keys again."""
        if self.fetcher is None:
            return False
        self._fetching.add(user_id)
        try:
            body = await self.fetcher(user_id, timeout_s)
        except Exception as exc:
            logger.info("device list resync of %s failed: %s", user_id, exc)
            await self._store.mark_stale([user_id])
            return False
        finally:
            self._fetching.discard(user_id)
        parsed = self._parse_user_devices(user_id, body)
        if parsed is None:
            logger.info("device list resync of %s: unusable answer", user_id)
            await self._store.mark_stale([user_id])
            return False
        stream_id, devices, cross = parsed
        old_devices = {d.device_id: d for d in await self._store.get_devices(user_id)}
        old_cross = await self._store.get_cross_signing_keys(user_id)
        new_devices = {d.device_id: d for d in devices}
        changed = sorted(
            d
            for d in old_devices.keys() | new_devices.keys()
            if old_devices.get(d) != new_devices.get(d)
        )
        now = self._clock.time_ms()

        async def txn_func(txn: Transaction) -> None:
            await self._store.replace_user_txn(txn, user_id, stream_id, devices, cross, now)
            if changed or old_cross != cross:
                await self._device_lists.record_change_txn(txn, user_id, changed)

        await self._stores.db.run_transaction("replace_remote_device_list", txn_func)
        return True

    def _resync_soon(self, user_id: str, device_ids: list[str]) -> None:
        """Resync the user's list in a task of its own, so that the transaction that
        brought the update is answered without waiting on a request to the user's
        server (which may be slow or down); one waiting task per user is enough."""
        if user_id in self._resync_waiting:
            return
        self._resync_waiting.add(user_id)
        task = asyncio.get_running_loop().create_task(self._resync_task(user_id, device_ids))
        self._resync_tasks.add(task)
        task.add_done_callback(self._resync_tasks.discard)

    async def _resync_task(self, user_id: str, device_ids: list[str]) -> None:
        try:
            async with self._lock(user_id):
                self._resync_waiting.discard(user_id)
                synced = await self._resync_locked(user_id, RESYNC_TIMEOUT_S)
            if not synced:
                # our copy stays stale (the next query tries again): local users are
                # told of the update all the same
                await self._device_lists.record_change(user_id, device_ids)
        except Exception:
            self._resync_waiting.discard(user_id)
            logger.exception("device list resync of %s failed", user_id)

    async def wait_resyncs(self) -> None:
        """Wait until the resyncs asked for so far are done."""
        while self._resync_tasks:
            await asyncio.gather(*self._resync_tasks, return_exceptions=True)

    @staticmethod
    def _parse_user_devices(
        user_id: str, body: Any
    ) -> tuple[int, list[RemoteDevice], dict[str, dict[str, Any]]] | None:
        if not isinstance(body, dict) or body.get("user_id") != user_id:
            return None
        stream_id, devices = body.get("stream_id"), body.get("devices")
        if not isinstance(stream_id, int) or isinstance(stream_id, bool):
            return None
        if not isinstance(devices, list):
            return None
        out: dict[str, RemoteDevice] = {}
        for entry in devices:
            if not isinstance(entry, dict) or not isinstance(entry.get("device_id"), str):
                continue
            device_id = entry["device_id"]
            name = entry.get("device_display_name")
            keys = remote_device_keys(entry.get("keys"))
            out[device_id] = RemoteDevice(device_id, name if isinstance(name, str) else None, keys)
        return stream_id, list(out.values()), checked_cross_signing_keys(body, user_id)

    # -- inbound EDUs -----------------------------------------------------------------

    async def on_device_list_update(self, origin: str, content: dict[str, Any]) -> None:
        """``m.device_list_update`` from ``origin`` (s2s "Device Management")."""
        user_id = content.get("user_id")
        device_id, stream_id = content.get("device_id"), content.get("stream_id")
        prev_ids = content.get("prev_id") or []
        deleted = content.get("deleted", False)
        name = content.get("device_display_name")
        if (
            _server_of(user_id) != origin
            or not isinstance(device_id, str)
            or not isinstance(stream_id, int)
            or isinstance(stream_id, bool)
            or not isinstance(prev_ids, list)
            or not all(_is_int(p) for p in prev_ids)
            or not isinstance(deleted, bool)
        ):
            logger.info("ignoring a malformed m.device_list_update from %s", origin)
            return
        assert isinstance(user_id, str)
        if not await self.is_tracked(user_id):
            return
        if user_id in self._fetching or user_id in self._resync_waiting:
            # a snapshot is on its way, which may or may not hold this update: wait
            # neither for it nor on it (the origin may be slow), take another after
            self._resync_soon(user_id, [device_id])
            return
        keys = None
        if not deleted and content.get("keys") is not None:
            keys = remote_device_keys(content["keys"])
        usable = deleted or content.get("keys") is None or keys is not None
        async with self._lock(user_id):
            current = await self._store.get_list(user_id)
            if current is not None and not current.stale and stream_id < current.stream_id:
                return  # older than our copy
            follows = (
                current is not None
                and not current.stale
                and usable
                and (
                    stream_id == current.stream_id or max(prev_ids, default=0) <= current.stream_id
                )
            )
            if current is None:
                # no copy yet: local users are told at once (a query fetches the list
                # anyway), and a resync makes the copy (as Synapse fetches it)
                await self._device_lists.record_change(user_id, [device_id])
                self._resync_soon(user_id, [device_id])
                return
            if not follows:
                # we missed updates: our copy is stale until a resync replaces it;
                # the resync tells local users what changed
                await self._store.mark_stale([user_id])
                self._resync_soon(user_id, [device_id])
                return
            device = RemoteDevice(device_id, name if isinstance(name, str) else None, keys)
            now = self._clock.time_ms()

            async def txn_func(txn: Transaction) -> None:
                await self._store.apply_update_txn(txn, user_id, stream_id, device, deleted, now)
                await self._device_lists.record_change_txn(txn, user_id, [device_id])

            await self._stores.db.run_transaction("apply_remote_device_update", txn_func)

    async def on_signing_key_update(self, origin: str, content: dict[str, Any]) -> None:
        """``m.signing_key_update`` from ``origin`` (s2s "End-to-End Encryption")."""
        user_id = content.get("user_id")
        if _server_of(user_id) != origin:
            return
        assert isinstance(user_id, str)
        if not await self.is_tracked(user_id):
            return
        async with self._lock(user_id):
            held = await self._store.get_cross_signing_keys(user_id)
            keys = checked_cross_signing_keys(content, user_id, held.get("master"))
            if not keys:
                return
            await self._store.set_cross_signing_keys(user_id, keys)
        await self._device_lists.record_change(user_id, [])
