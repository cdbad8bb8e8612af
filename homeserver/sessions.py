"""Sessions: devices with their access and refresh tokens (login, refresh, logout)."""

from __future__ import annotations

import secrets
import string
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeserver.auth import Authenticator, new_token, token_hash
from homeserver.clock import Clock
from homeserver.errors import NotFound, UnknownToken
from homeserver.replication.invalidation import ACCESS_TOKENS, USERS, CachePublisher
from storage.database import Transaction
from storage.devices import DeviceRecord
from storage.stores import Stores

DEVICE_ID_ALPHABET = string.ascii_uppercase


# How often a device's last-seen time is written at most (as Synapse's granularity).
LAST_SEEN_GRANULARITY_MS = 120_000
SEEN_CACHE_SIZE = 50_000


def new_device_id() -> str:
    return "".join(secrets.choice(DEVICE_ID_ALPHABET) for _ in range(10))


@dataclass(frozen=True)
class Session:
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None


# Called (inside the transaction) when devices are removed, e.g. to drop their keys.
DeviceRemovedHook = Callable[[Transaction, str, list[str]], Awaitable[None]]
# Called (inside the transaction) when a device is created: (txn, user_id, device_id).
DeviceAddedHook = Callable[[Transaction, str, str], Awaitable[None]]
# Called after a device got a new display name: (user_id, device_id).
DeviceRenamedHook = Callable[[str, str], Awaitable[None]]


class SessionService:
    def __init__(
        self,
        stores: Stores,
        authenticator: Authenticator,
        clock: Clock,
        *,
        refreshable_token_lifetime_ms: int = 5 * 60 * 1000,
        cache_publisher: CachePublisher | None = None,
    ) -> None:
        self._stores = stores
        self._authenticator = authenticator
        # tells the other processes' token caches (a revoked token stops working there)
        self._cache_publisher = cache_publisher or CachePublisher()
        self._clock = clock
        self._lifetime_ms = refreshable_token_lifetime_ms
        self.device_removed_hooks: list[DeviceRemovedHook] = []
        self.device_added_hooks: list[DeviceAddedHook] = []
        self.device_renamed_hooks: list[DeviceRenamedHook] = []
        # (user, device) -> ((ip, user agent), when written): last-seen writes are throttled
        self._seen: OrderedDict[tuple[str, str], tuple[tuple[str, str], int]] = OrderedDict()

    async def devices(self, user_id: str) -> list[DeviceRecord]:
        return await self._stores.devices.get_devices(user_id)

    async def device(self, user_id: str, device_id: str) -> DeviceRecord:
        """One of the user's devices; M_NOT_FOUND when they have no such device."""
        device = await self._stores.devices.get_device(user_id, device_id)
        if device is None:
            raise NotFound("Device not found")
        return device

    async def rename_device(self, user_id: str, device_id: str, display_name: str | None) -> None:
        """Set a device's display name (None clears it); a device list change for whoever
        tracks the user's devices (s2s "Device Management")."""
        if not await self._stores.devices.set_display_name(user_id, device_id, display_name):
            raise NotFound("Device not found")
        for hook in self.device_renamed_hooks:
            await hook(user_id, device_id)

    async def note_seen(self, user_id: str, device_id: str, ip: str, user_agent: str = "") -> None:
        """A request from the device: its last-seen time, IP and user agent (``GET
        /devices``, the admin API's whois), written at most once per
        ``LAST_SEEN_GRANULARITY_MS`` unless the IP or user agent changed."""
        key = (user_id, device_id)
        now = self._clock.time_ms()
        previous = self._seen.get(key)
        if (
            previous is not None
            and previous[0] == (ip, user_agent)
            and now - previous[1] < LAST_SEEN_GRANULARITY_MS
        ):
            return
        self._seen[key] = ((ip, user_agent), now)
        self._seen.move_to_end(key)
        if len(self._seen) > SEEN_CACHE_SIZE:
            self._seen.popitem(last=False)
        await self._stores.devices.update_last_seen(user_id, device_id, now, ip, user_agent)

    async def upsert_device(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        """Create a device without a session (an application service manages its
        users' devices, MSC4190), or rename an existing one when ``display_name`` is
        given; True when it was created."""
        now = self._clock.time_ms()

        async def txn_func(txn: Transaction) -> bool:
            created = await self._stores.devices.ensure_device_txn(
                txn, user_id, device_id, display_name, now
            )
            if created:
                for hook in self.device_added_hooks:
                    await hook(txn, user_id, device_id)
            return created

        created = await self._stores.db.run_transaction("upsert_device", txn_func)
        if not created and display_name is not None:
            await self.rename_device(user_id, device_id, display_name)
        return created

    async def create_session_txn(
        self,
        txn: Transaction,
        user_id: str,
        device_id: str | None,
        display_name: str | None,
        *,
        refreshable: bool,
    ) -> Session:
        """Make (or reuse) a device and give it a new access token."""
        now = self._clock.time_ms()
        device_id = device_id or new_device_id()
        if await self._stores.devices.ensure_device_txn(txn, user_id, device_id, display_name, now):
            for hook in self.device_added_hooks:
                await hook(txn, user_id, device_id)
        access_token = new_token("syt")
        refresh_token: str | None = None
        expires_ts: int | None = None
        refresh_hash: str | None = None
        if refreshable:
            refresh_token = new_token("syr")
            refresh_hash = token_hash(refresh_token)
            expires_ts = now + self._lifetime_ms
            await self._stores.tokens.add_refresh_token_txn(
                txn, refresh_hash, user_id, device_id, now
            )
        await self._stores.tokens.add_access_token_txn(
            txn,
            token_hash(access_token),
            user_id,
            device_id,
            created_ts=now,
            expires_ts=expires_ts,
            refresh_token_hash=refresh_hash,
        )
        return Session(
            user_id,
            device_id,
            access_token,
            refresh_token,
            self._lifetime_ms if refreshable else None,
        )

    async def refresh(self, refresh_token: str) -> Session:
        """Exchange a refresh token for a new access and refresh token pair."""
        old_hash = token_hash(refresh_token)

        async def txn_func(txn: Transaction) -> tuple[Session, list[str]]:
            record = await self._stores.tokens.get_refresh_token_txn(txn, old_hash)
            if record is None:
                raise UnknownToken("Unknown refresh token")
            revoked: list[str] = []
            if record.next_token_hash is not None:
                # A retry: the successor was never used; replace it.
                revoked += await self._stores.tokens.delete_refresh_token_txn(
                    txn, record.next_token_hash
                )
            revoked += await self._stores.tokens.delete_predecessor_txn(txn, old_hash)
            now = self._clock.time_ms()
            new_refresh = new_token("syr")
            new_hash = token_hash(new_refresh)
            await self._stores.tokens.add_refresh_token_txn(
                txn, new_hash, record.user_id, record.device_id, now
            )
            revoked += await self._stores.tokens.replace_refresh_token_txn(txn, old_hash, new_hash)
            access = new_token("syt")
            await self._stores.tokens.add_access_token_txn(
                txn,
                token_hash(access),
                record.user_id,
                record.device_id,
                created_ts=now,
                expires_ts=now + self._lifetime_ms,
                refresh_token_hash=new_hash,
            )
            session = Session(
                record.user_id, record.device_id, access, new_refresh, self._lifetime_ms
            )
            return session, revoked

        session, revoked = await self._stores.db.run_transaction("refresh_token", txn_func)
        self.forget_tokens(revoked)
        return session

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """Remove devices and every token they hold."""

        async def txn_func(txn: Transaction) -> list[str]:
            return await self.delete_devices_txn(txn, user_id, device_ids)

        revoked = await self._stores.db.run_transaction("delete_devices", txn_func)
        self.forget_tokens(revoked)

    def forget_tokens(self, token_hashes: list[str]) -> None:
        """Tell the token caches (this process's and the others') about tokens revoked
        by a committed transaction."""
        self._authenticator.forget(token_hashes)
        self._cache_publisher.stale(ACCESS_TOKENS, token_hashes)

    def forget_user(self, user_id: str) -> None:
        """Tell the caches that ``user_id`` was deactivated (an application service may
        no longer act as it either), or that its cached requesters' flags changed
        (locked, suspended, shadow-banned ...), in every process."""
        self._authenticator.forget_user(user_id)
        self._cache_publisher.stale(USERS, [user_id])

    async def delete_devices_txn(
        self, txn: Transaction, user_id: str, device_ids: list[str]
    ) -> list[str]:
        revoked = await self._stores.tokens.delete_tokens_for_devices_txn(txn, user_id, device_ids)
        await self._stores.devices.delete_devices_txn(txn, user_id, device_ids)
        for hook in self.device_removed_hooks:
            await hook(txn, user_id, device_ids)
        return revoked

    async def delete_other_devices_txn(
        self, txn: Transaction, user_id: str, keep_device_id: str | None
    ) -> list[str]:
        rows = await txn.fetchall("SELECT device_id FROM devices WHERE user_id = $1", user_id)
        others = [r[0] for r in rows if r[0] != keep_device_id]
        return await self.delete_devices_txn(txn, user_id, others)
