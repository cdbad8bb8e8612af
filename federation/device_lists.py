"""Device lists and cross-signing keys sent to other servers (s2s "Device
Management": ``m.device_list_update``; "End-to-End Encryption":
``m.signing_key_update``).

:class:`DeviceListBroadcaster` is a ``DeviceListService.change_listeners`` entry:
when a local user's devices or keys change it queues, for every other server with a
member joined to a room the user is joined to, one ``m.device_list_update`` per
changed device (``stream_id``: the change's position in our device list stream;
``prev_id``: the user's previous device change, so the sequence holds only changes
sent as ``m.device_list_update``; ``deleted`` for a device that is gone), and an
``m.signing_key_update`` for a change of cross-signing keys or of their signatures
(recorded without a device: no step of that sequence). ``/user/devices`` reports the
user's latest change of either kind as the ``stream_id`` of a snapshot, which every
later ``prev_id`` is at or below. Changes are handled one at a time, in commit order,
so each server gets them in sequence. The listener (and so the client request that
made the change, see ``DeviceListService.announced``) returns once the transactions
carrying them were answered, or after ``FLUSH_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from homeserver.e2ee.keys import E2eKeyService
from homeserver.events import server_name_of
from storage.stores import Stores

logger = logging.getLogger(__name__)

# How long a change of a local user's keys waits for other servers to take it.
FLUSH_TIMEOUT_S = 1.0


class EduSender(Protocol):
    """What broadcasting needs of ``federation.sender.FederationSender``."""

    async def send_edu(
        self, destination: str, edu_type: str, content: dict[str, Any], key: str | None = None
    ) -> None: ...

    async def joined_servers(self, room_id: str) -> set[str]: ...

    async def flush(self, destinations: set[str], timeout_s: float) -> None: ...


class DeviceListBroadcaster:
    def __init__(
        self, server_name: str, stores: Stores, keys: E2eKeyService, sender: EduSender
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._keys = keys
        self._sender = sender
        self._lock = asyncio.Lock()

    def _is_mine(self, user_id: str) -> bool:
        try:
            return server_name_of(user_id) == self._server_name
        except ValueError:
            return False

    async def destinations(self, user_id: str) -> set[str]:
        """Other servers sharing a room with the user."""
        rooms = await self._stores.state.rooms_for_user(user_id)
        servers: set[str] = set()
        for room_id, membership in rooms.items():
            if membership == "join":
                servers |= await self._sender.joined_servers(room_id)
        servers.discard(self._server_name)
        return servers

    async def on_device_list_change(
        self, user_id: str, device_ids: list[str], position: int
    ) -> None:
        """The ``change_listeners`` entry (after the change committed)."""
        if not self._is_mine(user_id):
            return  # a remote user's change recorded for our clients
        async with self._lock:
            destinations = await self.destinations(user_id)
            if not destinations:
                return
            edus = await self._edus_for(user_id, device_ids, position)
            for destination in sorted(destinations):
                for edu_type, content, key in edus:
                    await self._sender.send_edu(destination, edu_type, content, key)
        # The client's request returns once the servers have the update (or after
        # FLUSH_TIMEOUT_S): whoever shares a room sees the new keys before the user's
        # next message, rather than encrypting for the old device list.
        await self._sender.flush(destinations, FLUSH_TIMEOUT_S)

    async def _edus_for(
        self, user_id: str, device_ids: list[str], position: int
    ) -> list[tuple[str, dict[str, Any], str | None]]:
        # Device keys and cross-signing keys with the signatures everyone may see.
        local = await self._keys.query_local_keys({user_id: list(device_ids)}, None)
        if not device_ids:
            # cross-signing keys or their signatures: recorded without a device, and
            # so not in the sequence ``previous_device_change`` reads
            update = signing_key_update(
                user_id, local["master_keys"].get(user_id), local["self_signing_keys"].get(user_id)
            )
            return [("m.signing_key_update", update, user_id)]
        edus: list[tuple[str, dict[str, Any], str | None]] = []
        prev = await self._stores.remote_devices.previous_device_change(user_id, position)
        keyed = local["device_keys"].get(user_id, {})
        for device_id in device_ids:
            content: dict[str, Any] = {
                "user_id": user_id,
                "device_id": device_id,
                "stream_id": position,
                "prev_id": [] if prev is None else [prev],
                "deleted": False,
            }
            record = await self._stores.devices.get_device(user_id, device_id)
            if record is None:
                content["deleted"] = True
            else:
                if record.display_name is not None:
                    content["device_display_name"] = record.display_name
                keys = keyed.get(device_id)
                if keys is not None:
                    content["keys"] = {k: v for k, v in keys.items() if k != "unsigned"}
            edus.append(("m.device_list_update", content, None))
        return edus


def signing_key_update(
    user_id: str, master: dict[str, Any] | None, self_signing: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``m.signing_key_update`` content of a user's current keys."""
    content: dict[str, Any] = {"user_id": user_id}
    if master is not None:
        content["master_key"] = master
    if self_signing is not None:
        content["self_signing_key"] = self_signing
    return content
