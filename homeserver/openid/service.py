"""Making and checking OpenID tokens."""

from __future__ import annotations

from typing import Any

from homeserver.auth import new_token, token_hash
from homeserver.clock import Clock
from homeserver.errors import Forbidden, MissingToken, UnknownToken
from storage.stores import Stores

OPENID_TOKEN_LIFETIME_MS = 60 * 60 * 1000


class OpenIdService:
    def __init__(self, server_name: str, stores: Stores, clock: Clock) -> None:
        self._server_name = server_name
        self._stores = stores
        self._clock = clock

    async def request_token(self, requester_id: str, user_id: str) -> dict[str, Any]:
        """A new token for ``user_id``, who must be the requester (client-server
        ``requestOpenIdToken``)."""
        if requester_id != user_id:
            raise Forbidden("Cannot request tokens for other users.")
        token = new_token("syo")
        now = self._clock.time_ms()
        await self._stores.openid_tokens.add(
            token_hash(token), user_id, now + OPENID_TOKEN_LIFETIME_MS, now
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": self._server_name,
            "expires_in": OPENID_TOKEN_LIFETIME_MS // 1000,
        }

    async def user_info(self, token: str | None) -> dict[str, str]:
        """Whose token it is (server-server ``getOpenIdUserInfo``): 401 M_MISSING_TOKEN
        without one, 401 M_UNKNOWN_TOKEN for one unknown or expired."""
        if not token:
            raise MissingToken("Access Token required")
        user_id = await self._stores.openid_tokens.get_user(
            token_hash(token), self._clock.time_ms()
        )
        if user_id is None:
            raise UnknownToken("Access Token unknown or expired")
        return {"sub": user_id}
