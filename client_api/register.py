"""Account registration (client-server API: Account registration)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext, access_token_of, client_ip
from client_api.versions import json_response
from homeserver.accounts import NotGuest
from homeserver.appservice.users import LOGIN_TYPE as APPSERVICE_TYPE
from homeserver.errors import BadJson, Forbidden, MatrixError, MissingParam, UnknownToken
from homeserver.http.body import get_bool, get_str, json_object
from homeserver.ratelimit import RateLimit
from homeserver.sessions import Session

TOKEN_STAGE = "m.login.registration_token"


def _session_of(body: dict[str, Any]) -> str | None:
    """The UIA session a request continues, if it names one."""
    auth = body.get("auth")
    session = auth.get("session") if isinstance(auth, dict) else None
    return session if isinstance(session, str) and session else None


def session_body(user_id: str, session: Session | None) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id}
    if session is not None:
        body["access_token"] = session.access_token
        body["device_id"] = session.device_id
        if session.refresh_token is not None:
            body["refresh_token"] = session.refresh_token
            body["expires_in_ms"] = session.expires_in_ms
    return body


def _registration_type(body: dict[str, Any]) -> str | None:
    """The registration type of a body: top-level ``type`` (what bridges send) or
    that of ``auth``."""
    kind = body.get("type")
    if kind is None and isinstance(body.get("auth"), dict):
        kind = body["auth"].get("type")
    return kind if isinstance(kind, str) else None


class RegisterHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        cfg = ctx.config
        self._limit = RateLimit(cfg.rc_registration.per_second, cfg.rc_registration.burst_count)

    async def register(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/register."""
        cfg = self._ctx.config
        kind = request.query.get("kind", "user")
        body = await json_object(request)
        if kind not in ("user", "guest"):
            raise MatrixError(400, "M_INVALID_PARAM", "kind must be 'user' or 'guest'")
        refreshable = get_bool(body, "refresh_token", False)
        if kind == "user" and _registration_type(body) == APPSERVICE_TYPE:
            return await self._register_appservice_user(request, body, refreshable)
        self._ctx.limiter.check("register", client_ip(request), self._limit)
        device_name = get_str(body, "initial_device_display_name", None)
        if kind == "guest":
            if not cfg.allow_guest_access:
                raise Forbidden("Guest access is disabled", errcode="M_GUEST_ACCESS_FORBIDDEN")
            localpart = await self._ctx.accounts.generate_localpart()
            user_id, session = await self._ctx.accounts.register(
                localpart,
                None,
                guest=True,
                device_display_name=device_name,
                refreshable=refreshable,
            )
            return json_response(session_body(user_id, session))
        if access_token_of(request) is not None:
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "An access token should not be provided on requests to /register "
                f"(except if type is {APPSERVICE_TYPE})",
            )
        if not cfg.enable_registration:
            # (the config refuses open registration without any verification stage)
            raise Forbidden("Registration has been disabled")
        # The account an earlier request of this session created: the same request
        # again returns it, with a new login (registration is idempotent, as Synapse).
        session_id = _session_of(body)
        registered = await self._ctx.uia.registered_user(session_id) if session_id else None
        # Check the parameters before starting UIA, so a client learns of a bad
        # username or password on its first request.
        username = get_str(body, "username", None)
        guest_token = get_str(body, "guest_access_token", None)
        if username is not None:
            username = username.lower()
            if registered is not None:
                if self._ctx.accounts.check_new_localpart(username) != registered:
                    raise MatrixError(
                        400,
                        "M_UNKNOWN",
                        "A different user ID has already been registered for this session",
                    )
            elif guest_token is None:
                await self._check_available(username)
            else:
                await self._check_guest_upgrade(username, guest_token)
        password = body.get("password")
        if password is not None:
            self._ctx.accounts.check_password_shape(password)
        for key in ("device_id", "initial_device_display_name"):
            get_str(body, key, None)
        stages = self._ctx.registration
        result = await self._ctx.uia.authenticate(
            "POST /register",
            body,
            stages.flows,
            params=stages.params(),
            client_ip=client_ip(request),
        )
        params = result.clientdict
        if result.registered_user_id is not None:
            return await self._login_again(result.registered_user_id, params)
        username = params.get("username")
        if username is None and guest_token is not None:
            raise MissingParam("Upgrading a guest account needs its 'username'")
        if username is None:
            username = await self._ctx.accounts.generate_localpart()
        elif not isinstance(username, str):
            raise BadJson("'username' must be a string")
        password = params.get("password")
        if password is not None:
            password = self._ctx.accounts.check_password_shape(password)
        inhibit_login = params.get("inhibit_login", False)
        if not isinstance(inhibit_login, bool):
            raise BadJson("'inhibit_login' must be a boolean")
        if guest_token is not None:
            # (a secret: not kept with the UIA session, so read from this request)
            user_id, session = await self._ctx.accounts.upgrade_guest(
                await self._check_guest_upgrade(username.lower(), guest_token),
                password,
                login=not inhibit_login,
                device_id=params.get("device_id"),
                device_display_name=params.get("initial_device_display_name"),
                refreshable=bool(params.get("refresh_token", False)),
                registration_token=result.completed.get(TOKEN_STAGE),
            )
            await self._registered(user_id, result.session_id, result.completed)
            return json_response(session_body(user_id, session))
        user_id, session = await self._ctx.accounts.register(
            username.lower(),
            password,
            login=not inhibit_login,
            device_id=params.get("device_id"),
            device_display_name=params.get("initial_device_display_name"),
            refreshable=bool(params.get("refresh_token", False)),
            registration_token=result.completed.get(TOKEN_STAGE),
        )
        await self._registered(user_id, result.session_id, result.completed)
        return json_response(session_body(user_id, session))

    async def _registered(self, user_id: str, session_id: str, completed: dict[str, Any]) -> None:
        """After a registration: the session keeps the account (until it expires) for
        a repeated request; the stages' effects (the terms agreed) are recorded."""
        await self._ctx.uia.remember_registered_user(session_id, user_id)
        await self._ctx.registration.after_registration(user_id, completed)
        # the address an m.login.email.identity / m.login.msisdn stage proved
        await self._ctx.threepids.add_registration_threepids(user_id, completed)

    async def _login_again(self, user_id: str, params: dict[str, Any]) -> web.Response:
        """A repeated request of a session that registered ``user_id``: that account,
        with a new session unless ``inhibit_login`` (as Synapse)."""
        inhibit_login = params.get("inhibit_login", False)
        if not isinstance(inhibit_login, bool):
            raise BadJson("'inhibit_login' must be a boolean")
        if inhibit_login:
            return json_response(session_body(user_id, None))
        device_id = params.get("device_id")
        display_name = params.get("initial_device_display_name")
        session = await self._ctx.accounts.login(
            user_id,
            device_id=device_id if isinstance(device_id, str) else None,
            device_display_name=display_name if isinstance(display_name, str) else None,
            refreshable=params.get("refresh_token") is True,
        )
        return json_response(session_body(user_id, session))

    async def _register_appservice_user(
        self, request: web.Request, body: dict[str, Any], refreshable: bool
    ) -> web.Response:
        """POST /register with type m.login.application_service: the as_token is the
        proof (no UIA, open whatever ``enable_registration`` says, no rate limit)."""
        token = access_token_of(request)
        if token is None:
            raise MatrixError(
                400,
                "M_MISSING_TOKEN",
                f"Appservice token must be provided when using a type of {APPSERVICE_TYPE}",
            )
        service = self._ctx.appservices.for_token(token)
        if service is None:
            raise UnknownToken(f"{APPSERVICE_TYPE} registration needs an application service token")
        username = get_str(body, "username", None)
        if username is None:
            raise MissingParam("Desired Username is missing or not a string")
        inhibit_login = get_bool(body, "inhibit_login", False)
        user_id, session = await self._ctx.appservice_users.register(
            service,
            username,
            login=not inhibit_login,
            device_id=get_str(body, "device_id", None),
            device_display_name=get_str(body, "initial_device_display_name", None),
            refreshable=refreshable,
        )
        return json_response(session_body(user_id, session))

    async def _check_guest_upgrade(self, localpart: str, guest_token: str) -> str:
        """The guest user ID to upgrade: ``guest_token`` must be a live access token of
        the guest account ``localpart`` (403 M_FORBIDDEN otherwise)."""
        user_id = self._ctx.accounts.check_new_localpart(localpart)
        try:
            requester = await self._ctx.authenticator.authenticate(guest_token)
        except MatrixError:
            raise NotGuest() from None
        if not requester.is_guest or requester.user_id != user_id:
            raise NotGuest()
        return user_id

    async def _check_available(self, localpart: str) -> None:
        if not await self._ctx.accounts.is_available(localpart):
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")

    async def get_available(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/register/available."""
        self._ctx.limiter.check("register", client_ip(request), self._limit)
        username = request.query.get("username")
        if not username:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing username")
        await self._check_available(username.lower())
        return json_response({"available": True})

    async def get_token_validity(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/register/m.login.registration_token/validity."""
        self._ctx.limiter.check("register", client_ip(request), self._limit)
        token = request.query.get("token")
        if not token:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing token")
        return json_response({"valid": await self._ctx.accounts.registration_token_valid(token)})
