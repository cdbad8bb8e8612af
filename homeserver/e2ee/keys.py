"""Device keys, one-time keys and fallback keys: upload, query and claim.

Spec: client-server "End-to-End Encryption" > "Key management API" (``/keys/upload``,
``/keys/query``, ``/keys/claim``), "One-time and fallback keys", "Extensions to
/sync"; server-server "End-to-End Encryption" (``/user/keys/query``,
``/user/keys/claim``) and "Device Management" (``/user/devices/{userId}``), which
federation serves with :meth:`query_local_keys`, :meth:`claim_local_keys` and
:meth:`user_devices`.

Remote users are asked through two hooks that federation sets:

- ``remote_key_query(server_name, {user_id: [device_id, ...]}, timeout_ms)`` returns
  that server's ``/user/keys/query`` response body;
- ``remote_key_claim(server_name, {user_id: {device_id: algorithm}}, timeout_ms)``
  returns its ``/user/keys/claim`` response body.

A hook that is unset or raises records the server under ``failures``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

from homeserver.clock import Clock
from homeserver.e2ee.cross_signing import visible_signatures
from homeserver.e2ee.device_lists import DeviceListService
from homeserver.e2ee.validation import (
    check_device_keys,
    check_one_time_key,
    without_signatures,
)
from homeserver.errors import InvalidParam
from homeserver.events import server_name_of
from homeserver.replication.invalidation import ONE_TIME_KEYS, CachePublisher, device_key
from storage.database import IntegrityError, Transaction
from storage.stores import Stores

logger = logging.getLogger(__name__)

RemoteKeyQuery = Callable[[str, dict[str, list[str]], int], Awaitable[dict[str, Any]]]
RemoteKeyClaim = Callable[[str, dict[str, dict[str, str]], int], Awaitable[dict[str, Any]]]

DEFAULT_TIMEOUT_MS = 10_000


def _failure(exc: BaseException | None) -> dict[str, Any]:
    if exc is None:
        return {"status": 503, "message": "Federation is not available"}
    status = getattr(exc, "status", 503)
    return {"status": status if isinstance(status, int) else 503, "message": str(exc)}


SYNC_KEYS_CACHE = 50_000
V = TypeVar("V")
W = TypeVar("W")


class E2eKeyService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        device_lists: DeviceListService,
        clock: Clock,
        *,
        cache_publisher: CachePublisher | None = None,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._device_lists = device_lists
        self._clock = clock
        # tells the other processes whose key counts changed (uploads, claims)
        self._cache_publisher = cache_publisher or CachePublisher()
        self.remote_key_query: RemoteKeyQuery | None = None
        self.remote_key_claim: RemoteKeyClaim | None = None
        # (user, device) -> (one-time key counts, unused fallback types), for /sync;
        # each change bumps the device's generation so a read racing it is not cached.
        self._sync_keys: dict[tuple[str, str], tuple[dict[str, int], list[str]]] = {}
        self._generation: dict[tuple[str, str], int] = {}
        self._cleared = 0  # moves on clear_caches, for the reads in flight then

    def _keys_changed_txn(self, txn: Transaction, devices: Collection[tuple[str, str]]) -> None:
        changed = list(devices)

        def forget() -> None:
            self.invalidate_devices(changed)

        def committed() -> None:
            forget()
            self._cache_publisher.stale(ONE_TIME_KEYS, [device_key(u, d) for u, d in changed])

        forget()
        txn.call_after_commit(committed)

    def invalidate_devices(self, devices: Collection[tuple[str, str]]) -> None:
        """The one-time and fallback keys of ``devices`` changed (here or in another
        process): /sync reads their counts again."""
        for key in devices:
            self._sync_keys.pop(key, None)
            self._generation[key] = self._generation.get(key, 0) + 1

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: /sync reads every
        device's counts again."""
        self._sync_keys.clear()
        self._cleared += 1

    def _remote_by_server(
        self, per_user: Mapping[str, V], convert: Callable[[V], W]
    ) -> dict[str, dict[str, W]]:
        """The remote users of a request, grouped by their server (bad IDs left out)."""
        by_server: dict[str, dict[str, W]] = defaultdict(dict)
        for user_id, value in per_user.items():
            if not self.is_mine(user_id):
                try:
                    by_server[server_name_of(user_id)][user_id] = convert(value)
                except ValueError:
                    continue
        return by_server

    def is_mine(self, user_id: str) -> bool:
        try:
            return server_name_of(user_id) == self._server_name
        except ValueError:
            return False

    # -- upload -----------------------------------------------------------------------

    async def upload(
        self,
        user_id: str,
        device_id: str,
        device_keys: dict[str, Any] | None,
        one_time_keys: dict[str, Any],
        fallback_keys: dict[str, Any],
    ) -> dict[str, int]:
        """``POST /keys/upload``: store what is given, all or nothing; return OTK counts.

        New device keys replace the device's old ones (as Synapse does: a client that
        lost its keys uploads new ones), and the signatures uploaded over the old ones
        go; a change is a device list change, an upload of the same keys is not."""
        if device_keys is not None:
            check_device_keys(device_keys, user_id, device_id)
        checked_otks = {
            check_one_time_key(name, key, "one_time_keys"): key
            for name, key in one_time_keys.items()
        }
        checked_fallback = {
            check_one_time_key(name, key, "fallback_keys"): key
            for name, key in fallback_keys.items()
        }
        fallback_algorithms = [algorithm for algorithm, _ in checked_fallback]
        if len(set(fallback_algorithms)) != len(fallback_algorithms):
            raise InvalidParam("fallback_keys: at most one key per algorithm")

        changes: list[int] = []

        async def txn_func(txn: Transaction) -> dict[str, int]:
            keys_store = self._stores.e2e_keys
            changes.clear()
            if device_keys is not None:
                existing = await keys_store.get_device_keys_txn(txn, user_id, device_id)
                if existing != device_keys:
                    now = self._clock.time_ms()
                    await keys_store.set_device_keys_txn(txn, user_id, device_id, device_keys, now)
                    if existing is not None and existing.get("keys") != device_keys["keys"]:
                        # signatures over the old keys (by the self-signing key) sign
                        # keys the device no longer has
                        await keys_store.delete_signatures_of_target_txn(txn, user_id, device_id)
                    changes.append(
                        await self._device_lists.record_change_txn(txn, user_id, [device_id])
                    )
            await self._store_one_time_keys_txn(txn, user_id, device_id, checked_otks)
            for (algorithm, key_id), key in checked_fallback.items():
                await keys_store.set_fallback_key_txn(
                    txn, user_id, device_id, algorithm, key_id, key
                )
            counts = await keys_store.count_one_time_keys_txn(txn, user_id, device_id)
            self._keys_changed_txn(txn, [(user_id, device_id)])
            return {"signed_curve25519": 0, **counts}

        try:
            counts = await self._stores.db.run_transaction("upload_keys", txn_func)
        except IntegrityError:
            # A concurrent upload inserted the same key IDs first: compare with those.
            counts = await self._stores.db.run_transaction("upload_keys", txn_func)
        await self._device_lists.announced(changes)
        return counts

    async def _store_one_time_keys_txn(
        self,
        txn: Transaction,
        user_id: str,
        device_id: str,
        checked: dict[tuple[str, str], Any],
    ) -> None:
        """Add new one-time keys; one already held must be uploaded unchanged (its
        signatures aside: a client may sign the same key again)."""
        held = await self._stores.e2e_keys.get_one_time_keys_txn(
            txn, user_id, device_id, list(checked)
        )
        new: list[tuple[str, str, Any]] = []
        for (algorithm, key_id), key in checked.items():
            old = held.get((algorithm, key_id))
            if old is None:
                new.append((algorithm, key_id, key))
            elif not _same_one_time_key(json.loads(old), key):
                raise InvalidParam(f"One-time key {algorithm}:{key_id} already exists and differs")
        if new:
            await self._stores.e2e_keys.add_one_time_keys_txn(
                txn, user_id, device_id, new, self._clock.time_ms()
            )

    # -- query ------------------------------------------------------------------------

    async def query(
        self, requester: str, device_keys: Mapping[str, list[str]], timeout_ms: int
    ) -> dict[str, Any]:
        """``POST /keys/query``: local users from storage, remote ones through the hook."""
        local = {u: d for u, d in device_keys.items() if self.is_mine(u)}
        result = await self.query_local_keys(local, requester)
        result["failures"] = {}
        by_server = self._remote_by_server(device_keys, list)
        if by_server:
            answers = await asyncio.gather(
                *(self._ask_remote_query(s, q, timeout_ms) for s, q in by_server.items())
            )
            for server, (body, failure) in zip(by_server, answers, strict=True):
                if failure is not None:
                    result["failures"][server] = failure
                    continue
                for section in ("device_keys", "master_keys", "self_signing_keys"):
                    value = body.get(section)
                    if isinstance(value, dict):
                        result[section].update(
                            {u: v for u, v in value.items() if u in by_server[server]}
                        )
            await self._merge_own_signatures(result["master_keys"], requester)
        return result

    async def _merge_own_signatures(self, master_keys: dict[str, Any], requester: str) -> None:
        """Add the requester's signatures (by their user-signing key, stored here) to
        remote users' master keys."""
        for user_id, master in master_keys.items():
            if self.is_mine(user_id) or not isinstance(master, dict):
                continue
            stored = await self._stores.e2e_keys.get_signatures_for_user(user_id)
            mine = [s for s in stored if s.signer_user_id == requester]
            keys = master.get("keys")
            if not mine or not isinstance(keys, dict) or len(keys) != 1:
                continue
            if not isinstance(master.get("signatures", {}), dict):
                continue
            ((_, public_key),) = keys.items()
            signatures = visible_signatures(mine, requester).get(public_key, {})
            if signatures:
                merged = dict(master)
                _merge_signatures(merged, signatures)
                master_keys[user_id] = merged

    async def _ask_remote_query(
        self, server: str, query: dict[str, list[str]], timeout_ms: int
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if self.remote_key_query is None:
            return {}, _failure(None)
        try:
            return await self.remote_key_query(server, query, timeout_ms), None
        except Exception as exc:
            logger.info("key query to %s failed: %s", server, exc)
            return {}, _failure(exc)

    async def query_local_keys(
        self, device_keys: Mapping[str, list[str]], requester: str | None
    ) -> dict[str, Any]:
        """Keys of local users; user-signing keys only for the requester themself.

        Federation's ``/user/keys/query`` passes ``requester=None``.
        """
        out: dict[str, Any] = {
            "device_keys": {},
            "master_keys": {},
            "self_signing_keys": {},
        }
        if requester is not None:
            out["user_signing_keys"] = {}
        store = self._stores.e2e_keys
        for user_id, wanted in device_keys.items():
            if not self.is_mine(user_id):
                continue
            signatures = visible_signatures(await store.get_signatures_for_user(user_id), requester)
            devices: dict[str, Any] = {}
            for stored in await store.get_user_device_keys(user_id, wanted):
                keys = dict(stored.keys)
                _merge_signatures(keys, signatures.get(stored.device_id, {}))
                keys["unsigned"] = unsigned_device_info(stored.display_name)
                devices[stored.device_id] = keys
            out["device_keys"][user_id] = devices
            cross = await store.get_cross_signing_keys(user_id)
            if "master" in cross:
                master = dict(cross["master"])
                ((_, public_key),) = master["keys"].items()
                _merge_signatures(master, signatures.get(public_key, {}))
                out["master_keys"][user_id] = master
            if "self_signing" in cross:
                out["self_signing_keys"][user_id] = cross["self_signing"]
            if "user_signing" in cross and requester == user_id:
                out["user_signing_keys"][user_id] = cross["user_signing"]
        return out

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        """Federation ``GET /user/devices/{userId}`` body for a local user: keys with
        the signatures everyone may see (as federation's ``/user/keys/query`` gives).

        ``keys`` is required of every listed device (s2s ``user_devices.yaml``), so a
        device that uploaded none is left out (Synapse lists only devices with keys
        too); other servers learn of it once it uploads keys."""
        position = await self._stores.e2e_keys.user_device_list_position(user_id)
        local = await self.query_local_keys({user_id: []}, None)
        keyed = local["device_keys"].get(user_id, {})
        devices = []
        for device in await self._stores.devices.get_devices(user_id):
            keys = keyed.get(device.device_id)
            if keys is None:
                continue
            entry: dict[str, Any] = {
                "device_id": device.device_id,
                "keys": {k: v for k, v in keys.items() if k != "unsigned"},
            }
            if device.display_name is not None:
                entry["device_display_name"] = device.display_name
            devices.append(entry)
        body: dict[str, Any] = {"user_id": user_id, "stream_id": position, "devices": devices}
        if user_id in local["master_keys"]:
            body["master_key"] = local["master_keys"][user_id]
        if user_id in local["self_signing_keys"]:
            body["self_signing_key"] = local["self_signing_keys"][user_id]
        return body

    # -- claim ------------------------------------------------------------------------

    async def claim(
        self, one_time_keys: Mapping[str, Mapping[str, str]], timeout_ms: int
    ) -> dict[str, Any]:
        """``POST /keys/claim``: each one-time key is handed out at most once."""
        local = {u: d for u, d in one_time_keys.items() if self.is_mine(u)}
        claimed = await self.claim_local_keys(local)
        failures: dict[str, Any] = {}
        by_server = self._remote_by_server(one_time_keys, dict)
        if by_server:
            answers = await asyncio.gather(
                *(self._ask_remote_claim(s, q, timeout_ms) for s, q in by_server.items())
            )
            for server, (body, failure) in zip(by_server, answers, strict=True):
                if failure is not None:
                    failures[server] = failure
                    continue
                keys = body.get("one_time_keys")
                if isinstance(keys, dict):
                    claimed.update({u: v for u, v in keys.items() if u in by_server[server]})
        return {"one_time_keys": claimed, "failures": failures}

    async def _ask_remote_claim(
        self, server: str, query: dict[str, dict[str, str]], timeout_ms: int
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if self.remote_key_claim is None:
            return {}, _failure(None)
        try:
            return await self.remote_key_claim(server, query, timeout_ms), None
        except Exception as exc:
            logger.info("key claim to %s failed: %s", server, exc)
            return {}, _failure(exc)

    async def claim_local_keys(
        self, one_time_keys: Mapping[str, Mapping[str, str]]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """Claim keys of local devices: a one-time key, else the fallback key (marked used).

        Devices are claimed in a fixed order so concurrent claims over PostgreSQL
        take row locks in the same order.
        """
        wanted = sorted(
            (u, d, alg)
            for u, devices in one_time_keys.items()
            if self.is_mine(u)
            for d, alg in devices.items()
        )

        async def txn_func(txn: Transaction) -> dict[str, dict[str, dict[str, Any]]]:
            store = self._stores.e2e_keys
            self._keys_changed_txn(txn, [(u, d) for u, d, _ in wanted])
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for user_id, device_id, algorithm in wanted:
                got = await store.claim_one_time_key_txn(txn, user_id, device_id, algorithm)
                if got is None:
                    got = await store.claim_fallback_key_txn(txn, user_id, device_id, algorithm)
                if got is not None:
                    key_id, key = got
                    out.setdefault(user_id, {})[device_id] = {f"{algorithm}:{key_id}": key}
            return out

        if not wanted:
            return {}
        return await self._stores.db.run_transaction("claim_one_time_keys", txn_func)

    # -- for /sync --------------------------------------------------------------------

    async def device_one_time_keys_count(self, user_id: str, device_id: str) -> dict[str, int]:
        """``device_one_time_keys_count`` of /sync (signed_curve25519 always present)."""
        return dict((await self._keys_for_sync(user_id, device_id))[0])

    async def device_unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]:
        """``device_unused_fallback_key_types`` of /sync."""
        return list((await self._keys_for_sync(user_id, device_id))[1])

    async def _keys_for_sync(
        self, user_id: str, device_id: str
    ) -> tuple[dict[str, int], list[str]]:
        key = (user_id, device_id)
        cached = self._sync_keys.get(key)
        if cached is not None:
            return cached
        generation = (self._generation.get(key, 0), self._cleared)
        counts = await self._stores.e2e_keys.count_one_time_keys(user_id, device_id)
        fallback = await self._stores.e2e_keys.unused_fallback_key_types(user_id, device_id)
        result = ({"signed_curve25519": 0, **counts}, list(fallback))
        if (self._generation.get(key, 0), self._cleared) == generation:
            self._sync_keys[key] = result
            if len(self._sync_keys) > SYNC_KEYS_CACHE:
                self._sync_keys.pop(next(iter(self._sync_keys)))
        return result


def unsigned_device_info(display_name: str | None) -> dict[str, Any]:
    """The ``unsigned`` of a device in a ``/keys/query`` answer, always present (as
    Synapse gives it): the display name when the device has one."""
    return {} if display_name is None else {"device_display_name": display_name}


def _same_one_time_key(old: Any, new: Any) -> bool:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return bool(old == new)
    return without_signatures(old) == without_signatures(new)


def _merge_signatures(obj: dict[str, Any], extra: Mapping[str, Mapping[str, str]]) -> None:
    if not extra:
        return
    sigs = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    for signer, by_key in extra.items():
        sigs.setdefault(signer, {}).update(by_key)
    obj["signatures"] = sigs
