"""Access tokens: minting, hashing, and authenticating requests (with a cache)."""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from homeserver.appservice import ApplicationService, AppServices
from homeserver.clock import Clock
from homeserver.errors import Forbidden, MatrixError, UnknownToken
from storage.cache_stats import CacheStats
from storage.stores import Stores


@dataclass(frozen=True)
class Requester:
    """Who made a request: the user, their device, and whether they are a guest.
    ``app_service``: the application service acting (with its as_token) as the user."""

    user_id: str
    device_id: str
    is_guest: bool = False
    token_hash: str = ""
    app_service: ApplicationService | None = None
    # set by the admin API: sends, invites and state changes get a fake success
    shadow_banned: bool = False
    # the user's own message rate limit (per second, burst), set by the admin API
    message_limit_override: tuple[int, int] | None = None
    # set by the admin API: may read, but not send, join, invite or change the profile
    suspended: bool = False

    @property
    def rate_limited(self) -> bool:
        """Whether rate limits apply: not to an application service's users unless its
        registration says ``rate_limited: true``."""
        return self.app_service is None or self.app_service.rate_limited


def new_token(prefix: str) -> str:
    """A fresh opaque token from the CSPRNG (256 bits), prefixed for recognisability."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    """What is stored for a token: a leak of the table gives no usable token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class _Cached:
    requester: Requester
    expires_ts: int | None


class Authenticator:
    """Turns an access token into a Requester. Hot path: a bounded in-memory cache."""

    def __init__(
        self,
        stores: Stores,
        clock: Clock,
        cache_size: int = 10_000,
        *,
        appservices: AppServices | None = None,
        server_name: str = "",
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size
        self.cache_stats = CacheStats(
            "get_user_by_access_token", lambda: len(self._cache), cache_size
        )
        self.appservices = appservices
        self._server_name = server_name
        # users known to be registered (identity assertion checks each request's user)
        self._registered: OrderedDict[str, None] = OrderedDict()
        # moves on each revocation, so that a read racing one is not cached (a revoked
        # token must stop working at once, here and in every other process)
        self._epoch = 0

    async def authenticate(
        self, token: str, *, user_id: str | None = None, device_id: str | None = None
    ) -> Requester:
        """The requester of ``token``. An application service's as_token acts as its
        sender, or as ``user_id`` (with ``device_id``) when that user is in its
        namespace (identity assertion); both are ignored for other tokens."""
        if self.appservices:
            service = self.appservices.for_token(token)
            if service is not None:
                return await self._assert_identity(service, user_id, device_id)
        hashed = token_hash(token)
        cached = self._cache.get(hashed)
        if cached is None:
            self.cache_stats.misses += 1
            epoch = self._epoch
            record = await self._stores.tokens.get_access_token(hashed)
            if record is None:
                raise UnknownToken()
            if record.deactivated:
                raise UnknownToken("User account has been deactivated")
            if record.locked:
                # (client-server API, "Account locking": a soft logout until unlocked)
                raise MatrixError(
                    401,
                    "M_USER_LOCKED",
                    "User account has been locked",
                    extra={"soft_logout": True},
                )
            cached = _Cached(
                Requester(
                    record.user_id,
                    record.device_id,
                    record.is_guest,
                    hashed,
                    shadow_banned=record.shadow_banned,
                    message_limit_override=record.limit_override,
                    suspended=record.suspended,
                ),
                record.expires_ts,
            )
            if record.refreshed_from is not None:
                # First use of a refreshed token: its predecessor may no longer be used.
                await self._stores.tokens.revoke_predecessor(record.refreshed_from)
            if self._epoch == epoch:
                self._cache[hashed] = cached
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                    self.cache_stats.evictions += 1
        else:
            self.cache_stats.hits += 1
            self._cache.move_to_end(hashed)
        if cached.expires_ts is not None and self._clock.time_ms() >= cached.expires_ts:
            raise UnknownToken("Access token has expired", soft_logout=True)
        return cached.requester

    async def _assert_identity(
        self, service: ApplicationService, user_id: str | None, device_id: str | None
    ) -> Requester:
        target = user_id or service.sender
        if target != service.sender:
            if not target.endswith(":" + self._server_name) or not service.owns_user(target):
                raise Forbidden(f"Application service cannot masquerade as this user ({target}).")
            if not await self._is_registered(target):
                raise Forbidden(f"Application service has not registered this user ({target})")
        if device_id:
            device = await self._stores.devices.get_device(target, device_id)
            if device is None:
                raise MatrixError(
                    400,
                    "M_UNKNOWN_DEVICE",
                    f"Application service trying to use a device that doesn't exist "
                    f"('{device_id}' for {target})",
                )
        return Requester(target, device_id or "", app_service=service)

    async def _is_registered(self, user_id: str) -> bool:
        if user_id in self._registered:
            self._registered.move_to_end(user_id)
            return True
        record = await self._stores.accounts.get_user(user_id)
        if record is None or record.deactivated:
            return False
        self._registered[user_id] = None
        if len(self._registered) > self._cache_size:
            self._registered.popitem(last=False)
        return True

    def forget(self, token_hashes: list[str]) -> None:
        """Drop revoked tokens from the cache (call after the revoking commit, in this
        process or another)."""
        self._epoch += 1
        for hashed in token_hashes:
            self._cache.pop(hashed, None)

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: drop every cached
        requester and registered user (a read in flight is not cached)."""
        self._epoch += 1
        self._cache.clear()
        self._registered.clear()

    def forget_user(self, user_id: str) -> None:
        """Drop the user's cached requesters (deactivated, locked, flags changed)."""
        self._epoch += 1
        self._registered.pop(user_id, None)
        for hashed in [h for h, c in self._cache.items() if c.requester.user_id == user_id]:
            del self._cache[hashed]


def require_not_suspended(requester: Requester, action: str) -> None:
    """403 M_USER_SUSPENDED when an admin suspended the account (client-server API,
    "Account suspension")."""
    if requester.suspended:
        raise Forbidden(
            f"{action} while account is suspended is not allowed.", errcode="M_USER_SUSPENDED"
        )


def require_not_guest(requester: Requester) -> None:
    if requester.is_guest:
        raise Forbidden("Guest access not allowed", errcode="M_GUEST_ACCESS_FORBIDDEN")
