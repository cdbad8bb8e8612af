"""Login, token refresh and logout (client-server API: Login, Logout, Refreshing access tokens)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext, client_ip
from client_api.register import session_body
from client_api.sso import sso_login_flows
from client_api.versions import json_response
from homeserver.appservice.users import LOGIN_TYPE as APPSERVICE_TYPE
from homeserver.errors import Forbidden, MatrixError, UnknownToken, Unrecognized
from homeserver.http.body import get_bool, get_dict, get_str, json_object
from homeserver.ratelimit import RateLimit
from homeserver.threepids.validation import phone_number_to_msisdn

# POST /login/get_token: one a minute, five at once (Synapse's)
GET_LOGIN_TOKEN_LIMIT = RateLimit(per_second=1 / 60, burst_count=5)


def login_identifier(body: dict[str, Any]) -> str:
    """The user named by ``identifier`` (m.id.user) or the deprecated ``user`` field."""
    identifier = get_dict(body, "identifier", None)
    if identifier is not None:
        id_type = get_str(identifier, "type")
        if id_type != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", f"Unknown identifier type {id_type}")
        return str(get_str(identifier, "user"))
    user = get_str(body, "user", None)
    if user is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing identifier")
    return str(user)


def third_party_identifier(body: dict[str, Any]) -> tuple[str, str] | None:
    """``(medium, address)`` of an ``m.id.thirdparty`` or ``m.id.phone`` identifier,
    or of the deprecated top-level ``medium``/``address``; None for a user name."""
    identifier = get_dict(body, "identifier", None)
    if identifier is None:
        if "medium" not in body and "address" not in body:
            return None
        return str(get_str(body, "medium")), str(get_str(body, "address"))
    id_type = identifier.get("type")
    if id_type == "m.id.thirdparty":
        return str(get_str(identifier, "medium")), str(get_str(identifier, "address"))
    if id_type == "m.id.phone":
        country = str(get_str(identifier, "country"))
        phone = str(get_str(identifier, "phone"))
        return "msisdn", phone_number_to_msisdn(country, phone)
    return None


class LoginHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_login
        self._address_limit = RateLimit(rc.address.per_second, rc.address.burst_count)
        self._account_limit = RateLimit(rc.account.per_second, rc.account.burst_count)
        self._failed_limit = RateLimit(
            rc.failed_attempts.per_second, rc.failed_attempts.burst_count
        )
        ctx.uia.register_stage("m.login.password", self._password_stage)

    async def _password_stage(self, auth: dict[str, Any], user_id: str | None) -> Any:
        if user_id is None:
            raise Forbidden("Password authentication needs a logged-in user")
        password = auth.get("password")
        if not isinstance(password, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing password")
        await self._ctx.accounts.reauthenticate(user_id, login_identifier(auth), password)
        return user_id

    async def get_login_flows(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/login."""
        flows = [*sso_login_flows(self._ctx.sso), {"type": "m.login.password"}]
        if self._ctx.config.login_via_existing_session.enabled:
            # tokens a logged-in client gets at POST /login/get_token (spec v1.7)
            flows = [f for f in flows if f["type"] != "m.login.token"]
            flows.append({"type": "m.login.token", "get_login_token": True})
        if self._ctx.appservices:
            flows.append({"type": APPSERVICE_TYPE})
        return json_response({"flows": flows})

    async def get_login_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v1/login/get_token (generateLoginToken): a login token
        for signing in another device, behind ``login_via_existing_session``."""
        settings = self._ctx.config.login_via_existing_session
        if not settings.enabled:
            raise Unrecognized()
        requester = await self._ctx.requester(request)
        self._ctx.limiter.check("get_login_token", requester.user_id, GET_LOGIN_TOKEN_LIMIT)
        body = await json_object(request, allow_empty=True)
        session_id = None
        if settings.require_ui_auth:
            result = await self._ctx.uia.authenticate_user(
                "POST /login/get_token", body, requester.user_id
            )
            session_id = result.session_id
        token = await self._ctx.sso.login_tokens.create(
            requester.user_id, None, settings.token_timeout
        )
        if session_id is not None:
            await self._ctx.uia.finish(session_id)
        return json_response({"login_token": token, "expires_in_ms": settings.token_timeout})

    async def login(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/login."""
        body = await json_object(request)
        login_type = get_str(body, "type")
        device_id = get_str(body, "device_id", None)
        display_name = get_str(body, "initial_device_display_name", None)
        refreshable = get_bool(body, "refresh_token", False)
        if login_type == APPSERVICE_TYPE:
            return await self._login_appservice_user(
                request, body, device_id, display_name, refreshable
            )
        self._ctx.limiter.check("login_address", client_ip(request), self._address_limit)
        if login_type == "m.login.token":
            # a token single sign-on handed out (homeserver/sso/login_tokens.py)
            record = await self._ctx.sso.login_tokens.consume(get_str(body, "token"))
            user_id = record.user_id
            self._ctx.limiter.check("login_account", user_id, self._account_limit)
        elif login_type == "m.login.password":
            identifier = await self._password_login_name(body)
            password = get_str(body, "password")
            user_id = await self._ctx.accounts.login_with_password(identifier, password)
        else:
            raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {login_type}")
        session = await self._ctx.accounts.login(
            user_id, device_id=device_id, device_display_name=display_name, refreshable=refreshable
        )
        response = session_body(user_id, session)
        response["home_server"] = self._ctx.server_name
        return json_response(response)

    async def _password_login_name(self, body: dict[str, Any]) -> str:
        """Who a password login names: a user (m.id.user, ``user``), or the holder of a
        third-party ID (m.id.thirdparty, m.id.phone, legacy ``medium``/``address``);
        an ID nobody holds is a failed login (403) like a wrong password."""
        threepid = third_party_identifier(body)
        if threepid is None:
            return login_identifier(body)
        user_id = await self._ctx.threepids.user_for_login(*threepid)
        if user_id is None:
            self._ctx.limiter.check(
                "login_failed", f"{threepid[0]} {threepid[1]}", self._failed_limit
            )
            raise Forbidden("Invalid username or password")
        return user_id

    async def _login_appservice_user(
        self,
        request: web.Request,
        body: dict[str, Any],
        device_id: str | None,
        display_name: str | None,
        refreshable: bool,
    ) -> web.Response:
        """POST /login with m.login.application_service: the as_token logs in a user
        of the service's namespace (identifier m.id.user)."""
        requester = await self._ctx.requester(request)
        service = requester.app_service
        if service is None:
            raise UnknownToken("This login method is only valid for application services")
        if service.rate_limited:
            self._ctx.limiter.check("login_address", client_ip(request), self._address_limit)
        identifier = body.get("identifier")
        if not isinstance(identifier, dict) or identifier.get("type") != "m.id.user":
            raise MatrixError(400, "M_INVALID_PARAM", "Login identifier must be of type m.id.user")
        user = identifier.get("user")
        if not isinstance(user, str) or not user:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user in identifier")
        session = await self._ctx.appservice_users.login(
            service,
            user,
            device_id=device_id,
            device_display_name=display_name,
            refreshable=refreshable,
        )
        response = session_body(session.user_id, session)
        response["home_server"] = self._ctx.server_name
        return json_response(response)

    async def refresh(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/refresh."""
        body = await json_object(request)
        token = get_str(body, "refresh_token")
        session = await self._ctx.sessions.refresh(token)
        return json_response(
            {
                "access_token": session.access_token,
                "refresh_token": session.refresh_token,
                "expires_in_ms": session.expires_in_ms,
            }
        )

    async def logout(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/logout: the token's device goes with it."""
        requester = await self._ctx.requester(request)
        await self._ctx.sessions.delete_devices(requester.user_id, [requester.device_id])
        return json_response({})

    async def logout_all(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/logout/all."""
        requester = await self._ctx.requester(request)
        devices = await self._ctx.sessions.devices(requester.user_id)
        ids = [d.device_id for d in devices]
        if requester.device_id not in ids:
            ids.append(requester.device_id)
        await self._ctx.sessions.delete_devices(requester.user_id, ids)
        return json_response({})
