"""The users of application services on the client API: registering ghosts with
``m.login.application_service``, logging in as them, the service's sender, and the
devices a service manages for its users (MSC4190).

Registration and login here skip user-interactive auth and ``enable_registration``:
the as_token is the proof. A service may only create or log in users of its own
namespace (``M_EXCLUSIVE`` / ``M_FORBIDDEN`` otherwise), as Synapse.
"""

from __future__ import annotations

from homeserver.accounts import AccountService
from homeserver.appservice.registration import ApplicationService
from homeserver.appservice.service import AppServices
from homeserver.auth import token_hash
from homeserver.clock import Clock
from homeserver.config import ConfigError
from homeserver.errors import Forbidden, MatrixError
from homeserver.ratelimit import RateLimit, RateLimiter
from homeserver.sessions import Session, SessionService
from storage.stores import Stores

LOGIN_TYPE = "m.login.application_service"


class LoginUnsupported(MatrixError):
    """MSC4190: a service that manages its users' devices itself gets no sessions."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "M_APPSERVICE_LOGIN_UNSUPPORTED", message)


class AppServiceUsers:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        appservices: AppServices,
        accounts: AccountService,
        sessions: SessionService,
        limiter: RateLimiter,
        login_limit: RateLimit,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._appservices = appservices
        self._accounts = accounts
        self._sessions = sessions
        self._limiter = limiter
        self._login_limit = login_limit
        self._clock = clock

    async def check_tokens_unused(self) -> None:
        """A service's as_token must not also be a user's access token (it would act
        as the service, never as the user): a start-up error naming the file."""
        clashes = [
            f"{service.source}: as_token: already the access token of a user"
            for service in self._appservices.services
            if await self._stores.tokens.get_access_token(token_hash(service.as_token)) is not None
        ]
        if clashes:
            raise ConfigError(clashes)

    async def ensure_senders(self) -> None:
        """Give each service's sender a (passwordless) account if it has none, so the
        sender has a profile and devices like any user (Synapse creates it when the
        service first registers it; services act as it before that)."""
        now = self._clock.time_ms()
        for service in self._appservices.services:
            localpart = service.sender[1:].split(":", 1)[0]
            await self._stores.accounts.ensure_user(
                service.sender, created_ts=now, displayname=localpart
            )

    async def register(
        self,
        service: ApplicationService,
        username: str,
        *,
        login: bool,
        device_id: str | None,
        device_display_name: str | None,
        refreshable: bool,
    ) -> tuple[str, Session | None]:
        """``POST /register`` with ``m.login.application_service``: create the user
        ``username`` (a localpart) of ``service``'s namespace. 400 M_EXCLUSIVE outside
        it (or in another service's exclusive one), 400 M_USER_IN_USE when taken."""
        user_id = self._accounts.check_appservice_localpart(username)
        if not service.is_interested_in_user(user_id):
            raise MatrixError(
                400, "M_EXCLUSIVE", "Invalid user localpart for this application service."
            )
        if service.msc4190 and login:
            raise LoginUnsupported(
                "This appservice has MSC4190 enabled, so the inhibit_login parameter "
                "must be set to true."
            )
        return await self._accounts.register(
            username,
            None,
            login=login,
            device_id=device_id,
            device_display_name=device_display_name,
            refreshable=refreshable,
            app_service=service,
        )

    async def login(
        self,
        service: ApplicationService,
        identifier: str,
        *,
        device_id: str | None,
        device_display_name: str | None,
        refreshable: bool,
    ) -> Session:
        """``POST /login`` with ``m.login.application_service``: a session for a
        registered user of ``service``'s namespace (or its sender)."""
        if service.msc4190:
            raise LoginUnsupported(
                "This appservice has MSC4190 enabled, so appservice login cannot be used."
            )
        user_id = identifier if identifier.startswith("@") else f"@{identifier}:{self._server_name}"
        if not service.is_interested_in_user(user_id):
            raise Forbidden("Invalid access_token")
        if service.rate_limited:
            self._limiter.check("login_account", user_id.lower(), self._login_limit)
        record = await self._stores.accounts.get_user(user_id)
        if record is None:
            raise Forbidden(f"{user_id} has not been registered")
        if record.deactivated:
            raise Forbidden("This account has been deactivated", errcode="M_USER_DEACTIVATED")
        return await self._accounts.login(
            user_id,
            device_id=device_id,
            device_display_name=device_display_name,
            refreshable=refreshable,
        )

    async def upsert_device(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        """``PUT /devices/{deviceId}`` by a service (MSC4190): create the device of its
        user, or rename it; True when it was created."""
        return await self._sessions.upsert_device(user_id, device_id, display_name)
