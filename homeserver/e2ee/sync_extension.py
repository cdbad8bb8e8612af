"""The e2ee part of /sync: ``device_lists``, ``device_one_time_keys_count`` and
``device_unused_fallback_key_types``.

Spec: client-server "Extensions to /sync" of the End-to-End Encryption module. It
plugs into the sync service as a ``SyncExtension`` (homeserver/sync/extensions.py)
for the ``device_lists`` stream of the sync token.
"""

from __future__ import annotations

from collections.abc import Collection

from homeserver.e2ee.device_lists import DeviceListService
from homeserver.e2ee.keys import E2eKeyService
from homeserver.sync.extensions import SyncPass


class DeviceListSyncExtension:
    stream = "device_lists"

    def __init__(self, device_lists: DeviceListService, keys: E2eKeyService) -> None:
        self._device_lists = device_lists
        self._keys = keys

    def current_position(self) -> int:
        return self._device_lists.current_position()

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool:
        return self._device_lists.has_updates(user_id, room_ids, since)

    async def contribute(self, sync: SyncPass) -> None:
        extra = sync.result.extra
        if sync.device_id is not None:
            extra["device_one_time_keys_count"] = await self._keys.device_one_time_keys_count(
                sync.user_id, sync.device_id
            )
            extra[
                "device_unused_fallback_key_types"
            ] = await self._keys.device_unused_fallback_key_types(sync.user_id, sync.device_id)
        if sync.since is None:
            return
        changes = await self._device_lists.device_lists(sync.user_id, sync.since, sync.now)
        extra["device_lists"] = changes.to_json()
        if changes.changed or changes.left:
            sync.result.has_other_news = True
