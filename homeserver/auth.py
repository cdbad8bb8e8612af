"""Access tokens: minting, hashing, and authenticating requests (with a cache)."""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from homeserver.clock import Clock
from homeserver.errors import Forbidden, UnknownToken
from storage.stores import Stores


@dataclass(frozen=True)
class Requester:
    """Who made a request: the user, their device, and whether they are a guest."""

    user_id: str
    device_id: str
    is_guest: bool = False
    token_hash: str = ""


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

    def __init__(self, stores: Stores, clock: Clock, cache_size: int = 10_000) -> None:
        self._stores = stores
        self._clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size

    async def authenticate(self, token: str) -> Requester:
        hashed = token_hash(token)
        cached = self._cache.get(hashed)
        if cached is None:
            record = await self._stores.tokens.get_access_token(hashed)
            if record is None:
                raise UnknownToken()
            if record.deactivated:
                raise UnknownToken("User account has been deactivated")
            cached = _Cached(
                Requester(record.user_id, record.device_id, record.is_guest, hashed),
                record.expires_ts,
            )
            if record.refreshed_from is not None:
                # First use of a refreshed token: its predecessor may no longer be used.
                await self._stores.tokens.revoke_predecessor(record.refreshed_from)
            self._cache[hashed] = cached
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(hashed)
        if cached.expires_ts is not None and self._clock.time_ms() >= cached.expires_ts:
            raise UnknownToken("Access token has expired", soft_logout=True)
        return cached.requester

    def forget(self, token_hashes: list[str]) -> None:
        """Drop revoked tokens from the cache (call after the revoking commit)."""
        for hashed in token_hashes:
            self._cache.pop(hashed, None)

    def forget_user(self, user_id: str) -> None:
        for hashed in [h for h, c in self._cache.items() if c.requester.user_id == user_id]:
            del self._cache[hashed]


def require_not_guest(requester: Requester) -> None:
    if requester.is_guest:
        raise Forbidden("Guest access not allowed", errcode="M_GUEST_ACCESS_FORBIDDEN")
