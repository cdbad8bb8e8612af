"""End-to-end encryption support: keys, device lists, cross-signing, key backup.

Spec: client-server "End-to-End Encryption" module. :class:`E2ee` bundles the
services, built once by the composition root:

- ``keys`` (:class:`E2eKeyService`): ``/keys/upload|query|claim``; federation hooks
  ``remote_key_query`` / ``remote_key_claim``; ``query_local_keys``,
  ``claim_local_keys`` and ``user_devices`` for federation's inbound endpoints;
- ``device_lists`` (:class:`DeviceListService`): the device list stream,
  ``device_lists(...)`` for /sync and ``/keys/changes``, ``change_listeners`` for
  outbound EDUs, ``record_change`` for inbound remote updates;
- ``cross_signing`` (:class:`CrossSigningService`): device_signing/upload and
  signatures/upload; federation hook ``remote_master_key``;
- ``backup`` (:class:`KeyBackupService`): ``/room_keys/*``.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.clock import Clock
from homeserver.e2ee.cross_signing import CrossSigningService
from homeserver.e2ee.device_lists import DeviceListChanges, DeviceListService
from homeserver.e2ee.key_backup import KeyBackupService
from homeserver.e2ee.keys import E2eKeyService
from homeserver.notifier import Notifier
from homeserver.replication.ephemeral import (
    EphemeralReplication,
    role_arguments,
    stream_source,
)
from homeserver.replication.invalidation import CachePublisher
from homeserver.replication.notices import DEVICE_LISTS
from homeserver.sessions import SessionService
from storage.stores import Stores


@dataclass(frozen=True)
class E2ee:
    keys: E2eKeyService
    device_lists: DeviceListService
    cross_signing: CrossSigningService
    backup: KeyBackupService

    @classmethod
    async def build(
        cls,
        server_name: str,
        stores: Stores,
        notifier: Notifier,
        sessions: SessionService,
        clock: Clock,
        *,
        replication: EphemeralReplication | None = None,
        cache_publisher: CachePublisher | None = None,
    ) -> E2ee:
        """Build the services; seed the device list stream from the database, make
        device deletion drop the device's keys (``device_removed_hooks``) and a new
        device and a renamed one a device list change (``device_added_hooks``,
        ``device_renamed_hooks``). ``replication``: the device list stream across
        processes (None: a single process)."""
        seed = await stores.e2e_keys.max_device_list_stream()
        device_lists = DeviceListService(
            stores,
            notifier,
            stream_source(replication, DEVICE_LISTS, seed),
            **role_arguments(replication, DEVICE_LISTS),
        )
        sessions.device_removed_hooks.append(device_lists.on_devices_removed_txn)
        sessions.device_added_hooks.append(device_lists.on_device_added_txn)
        sessions.device_renamed_hooks.append(device_lists.on_device_renamed)
        return cls(
            keys=E2eKeyService(
                server_name, stores, device_lists, clock, cache_publisher=cache_publisher
            ),
            device_lists=device_lists,
            cross_signing=CrossSigningService(server_name, stores, device_lists),
            backup=KeyBackupService(stores),
        )


__all__ = [
    "CrossSigningService",
    "DeviceListChanges",
    "DeviceListService",
    "E2eKeyService",
    "E2ee",
    "KeyBackupService",
]
