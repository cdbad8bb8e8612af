"""End-to-end encryption across servers, wired once by the composition root.

Spec: server-server "Device Management", "End-to-End Encryption", "Send-to-device
messaging". :meth:`FederationE2ee.build` connects

* the e2ee services' hooks (``remote_key_query``, ``remote_key_claim``,
  ``remote_master_key``) to :class:`~federation.user_keys.RemoteKeyClient`, which
  answers tracked users from the cache of :class:`~homeserver.e2ee.remote.RemoteDeviceLists`
  and asks the others' servers;
* local device list changes to outbound ``m.device_list_update`` /
  ``m.signing_key_update`` EDUs (:class:`~federation.device_lists.DeviceListBroadcaster`);
* inbound ``m.device_list_update`` / ``m.signing_key_update`` to the cache, and
  membership changes to its staleness (a ``persisted_hooks`` entry);
* :class:`InboundToDeviceIds`, with which ``m.direct_to_device`` EDUs are delivered
  once per (origin, message_id) (``federation.edu_wiring.wire_to_device``).

Its routes are ``/user/keys/query``, ``/user/keys/claim`` and ``/user/devices/{userId}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from federation.auth import FederationAuthenticator
from federation.client import FederationClient
from federation.device_lists import DeviceListBroadcaster
from federation.routes import Route
from federation.sender import FederationSender
from federation.transactions import TransactionHandler
from federation.user_keys import RemoteKeyClient, UserKeyHandlers, user_key_routes
from homeserver.clock import Clock
from homeserver.e2ee import E2ee
from homeserver.e2ee.remote import RemoteDeviceLists
from homeserver.rooms.persister import EventPersister
from storage.remote_devices import RemoteDeviceStore
from storage.stores import Stores

TO_DEVICE_IDS_KEEP_MS = 7 * 24 * 3600 * 1000
TO_DEVICE_IDS_PRUNE_EVERY_MS = 3600 * 1000


class InboundToDeviceIds:
    """The (origin, message_id) of delivered ``m.direct_to_device`` EDUs, kept a week."""

    def __init__(self, store: RemoteDeviceStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._last_prune = 0

    async def claim(self, origin: str, message_id: str) -> bool:
        """True when the message is new (and is now recorded)."""
        now = self._clock.time_ms()
        if now - self._last_prune >= TO_DEVICE_IDS_PRUNE_EVERY_MS:
            self._last_prune = now
            await self._store.prune_to_device_messages(now - TO_DEVICE_IDS_KEEP_MS)
        return await self._store.claim_to_device_message(origin, message_id, now)

    async def release(self, origin: str, message_id: str) -> None:
        await self._store.release_to_device_message(origin, message_id)


@dataclass
class FederationE2ee:
    remote: RemoteDeviceLists
    key_client: RemoteKeyClient
    handlers: UserKeyHandlers
    broadcaster: DeviceListBroadcaster
    to_device_ids: InboundToDeviceIds

    @classmethod
    def build(
        cls,
        server_name: str,
        stores: Stores,
        clock: Clock,
        e2ee: E2ee,
        *,
        client: FederationClient,
        sender: FederationSender,
        transactions: TransactionHandler,
        persister: EventPersister,
    ) -> FederationE2ee:
        remote = RemoteDeviceLists(server_name, stores, e2ee.device_lists, clock)
        key_client = RemoteKeyClient(client, remote)
        remote.fetcher = key_client.user_devices
        e2ee.keys.remote_key_query = key_client.query
        e2ee.keys.remote_key_claim = key_client.claim
        e2ee.cross_signing.remote_master_key = key_client.master_key
        broadcaster = DeviceListBroadcaster(server_name, stores, e2ee.keys, sender)
        e2ee.device_lists.change_listeners.append(broadcaster.on_device_list_change)
        transactions.register_edu_handler("m.device_list_update", remote.on_device_list_update)
        transactions.register_edu_handler("m.signing_key_update", remote.on_signing_key_update)
        persister.persisted_hooks.append(remote.on_event_persisted)
        return cls(
            remote,
            key_client,
            UserKeyHandlers(server_name, stores, e2ee.keys),
            broadcaster,
            InboundToDeviceIds(stores.remote_devices, clock),
        )

    def routes(self, auth: FederationAuthenticator) -> list[Route]:
        return user_key_routes(auth, self.handlers)
