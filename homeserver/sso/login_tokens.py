"""Login tokens (``m.login.token``): what single sign-on hands the client's redirect
URL, exchanged once at POST /login for an access token.

A token is random (256 bits from the CSPRNG), lives two minutes (as Synapse's; the
spec suggests "around five seconds", too short for a user clicking through the
confirmation page), is single-use, and is stored only as its SHA-256 digest. It is
never logged.
"""

from __future__ import annotations

from typing import Final

from homeserver.auth import new_token, token_hash
from homeserver.clock import Clock
from homeserver.errors import Forbidden
from storage.login_tokens import LoginTokenRecord
from storage.stores import Stores

LOGIN_TOKEN_LIFETIME_MS: Final = 2 * 60 * 1000


class InvalidLoginToken(Forbidden):
    def __init__(self) -> None:
        super().__init__("Invalid login token")


class LoginTokenService:
    def __init__(self, stores: Stores, clock: Clock) -> None:
        self._stores = stores
        self._clock = clock

    async def create(
        self,
        user_id: str,
        auth_provider: str | None,
        lifetime_ms: int = LOGIN_TOKEN_LIFETIME_MS,
    ) -> str:
        """A new token that logs in as ``user_id`` for ``lifetime_ms``."""
        token = new_token("syl")
        now = self._clock.time_ms()
        await self._stores.login_tokens.add(
            token_hash(token), user_id, auth_provider, now + lifetime_ms, now
        )
        return token

    async def consume(self, token: str) -> LoginTokenRecord:
        """Use ``token``: its record, once. 403 M_FORBIDDEN for a token that is unknown,
        used or expired (alike, as Synapse), 403 M_USER_DEACTIVATED if the account
        was deactivated since."""
        record = await self._stores.login_tokens.consume(token_hash(token), self._clock.time_ms())
        if record is None:
            raise InvalidLoginToken()
        account = await self._stores.accounts.get_user(record.user_id)
        if account is None:
            raise InvalidLoginToken()
        if account.deactivated:
            raise Forbidden("This account has been deactivated", errcode="M_USER_DEACTIVATED")
        return record
