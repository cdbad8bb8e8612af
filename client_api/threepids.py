"""Third-party IDs of accounts (client-server API "Adding Account Administrative
Contact Information", the requestToken endpoints of registration and password reset)
and the pages the links of validation mails open:

    POST /register/{email,msisdn}/requestToken
    POST /account/password/{email,msisdn}/requestToken
    POST /account/3pid/{email,msisdn}/requestToken
    GET  /account/3pid                     POST /account/3pid (legacy)
    POST /account/3pid/add (UIA)           POST /account/3pid/delete
    POST /account/3pid/bind                POST /account/3pid/unbind
    GET/POST .../{registration,password_reset,add_threepid}/email/submit_token
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext, client_ip
from client_api.sso_pages import html_response, redirect_response
from client_api.versions import json_response
from homeserver.auth import require_not_guest
from homeserver.email import ValidationPurpose
from homeserver.errors import MatrixError, MissingParam
from homeserver.http.body import get_int, get_str, json_object
from homeserver.threepids import EMAIL_STAGE, MSISDN_STAGE, ThreepidValidationFailed

MEDIA = ("email", "msisdn")


def _medium(body: dict[str, Any]) -> str:
    medium = get_str(body, "medium")
    if medium not in MEDIA:
        raise MatrixError(400, "M_INVALID_PARAM", "medium must be 'email' or 'msisdn'")
    return str(medium)


class ThreepidHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        self._threepids = ctx.threepids
        ctx.uia.register_stage(EMAIL_STAGE, ctx.threepids.email_stage)
        ctx.uia.register_stage(MSISDN_STAGE, ctx.threepids.msisdn_stage)

    # -- requestToken ------------------------------------------------------------------

    async def _email_token(self, request: web.Request, purpose: ValidationPurpose) -> web.Response:
        body = await json_object(request)
        answer = await self._threepids.request_email_token(
            purpose,
            str(get_str(body, "email")),
            str(get_str(body, "client_secret")),
            int(get_int(body, "send_attempt")),
            get_str(body, "next_link", None),
            client_ip(request),
        )
        return json_response(answer)

    async def _msisdn_token(self, request: web.Request, purpose: ValidationPurpose) -> web.Response:
        body = await json_object(request)
        answer = await self._threepids.request_msisdn_token(
            purpose,
            str(get_str(body, "country")),
            str(get_str(body, "phone_number")),
            str(get_str(body, "client_secret")),
            int(get_int(body, "send_attempt")),
            get_str(body, "next_link", None),
            client_ip(request),
        )
        return json_response(answer)

    async def register_email_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/register/email/requestToken."""
        return await self._email_token(request, ValidationPurpose.REGISTRATION)

    async def register_msisdn_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/register/msisdn/requestToken."""
        return await self._msisdn_token(request, ValidationPurpose.REGISTRATION)

    async def password_email_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/password/email/requestToken."""
        return await self._email_token(request, ValidationPurpose.PASSWORD_RESET)

    async def password_msisdn_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/password/msisdn/requestToken."""
        return await self._msisdn_token(request, ValidationPurpose.PASSWORD_RESET)

    async def add_email_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/email/requestToken."""
        self._threepids.check_changes_enabled()
        return await self._email_token(request, ValidationPurpose.ADD_THREEPID)

    async def add_msisdn_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/msisdn/requestToken."""
        self._threepids.check_changes_enabled()
        return await self._msisdn_token(request, ValidationPurpose.ADD_THREEPID)

    # -- the links of validation mails -------------------------------------------------

    def submit_token_page(self, purpose: ValidationPurpose) -> Any:
        async def handler(request: web.Request) -> web.Response:
            """GET .../{purpose}/email/submit_token?sid=&client_secret=&token= (the
            mailed link): validates the session; an HTML page or a 302 to next_link."""
            templates = self._threepids.templates
            try:
                if not self._threepids.can_verify_email:
                    raise ThreepidValidationFailed("Email validation is disabled on this server")
                query = request.query
                next_link = await self._threepids.submit_token(
                    _required(query, "sid"),
                    _required(query, "client_secret"),
                    _required(query, "token"),
                )
            except MatrixError as exc:
                page = templates.failure_page(purpose, exc.message)
                return html_response(page, status=exc.status)
            if next_link:
                return redirect_response(next_link)
            return html_response(templates.success_page(purpose))

        handler.__name__ = f"submit_{purpose.value}_token_page"
        return handler

    async def submit_token(self, request: web.Request) -> web.Response:
        """POST .../email/submit_token (the spec's ``submit_url``): JSON ``sid``,
        ``client_secret``, ``token``; ``{"success": true}``."""
        if not self._threepids.can_verify_email:
            raise MatrixError(400, "M_UNKNOWN", "Email validation is disabled on this server")
        body = await json_object(request)
        await self._threepids.submit_token(
            str(get_str(body, "sid")),
            str(get_str(body, "client_secret")),
            str(get_str(body, "token")),
        )
        return json_response({"success": True})

    # -- the account's third-party IDs ------------------------------------------------

    async def get_threepids(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/account/3pid."""
        requester = await self._ctx.requester(request)
        return json_response({"threepids": await self._threepids.threepids(requester.user_id)})

    async def add_threepid(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/add (UIA): add the address of a
        session validated by email (or by the msisdn delegate)."""
        self._threepids.check_changes_enabled()
        requester = await self._ctx.requester(request)
        require_not_guest(requester)
        body = await json_object(request)
        client_secret = str(get_str(body, "client_secret"))
        sid = str(get_str(body, "sid"))
        result = await self._ctx.uia.authenticate_user(
            "POST /account/3pid/add", body, requester.user_id
        )
        await self._threepids.add_validated(requester.user_id, sid, client_secret)
        await self._ctx.uia.finish(result.session_id)
        return json_response({})

    async def add_threepid_legacy(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid (deprecated): ``three_pid_creds``."""
        self._threepids.check_changes_enabled()
        requester = await self._ctx.requester(request)
        require_not_guest(requester)
        body = await json_object(request)
        creds = body.get("three_pid_creds", body.get("threePidCreds"))
        if creds is None:
            raise MissingParam("Missing param three_pid_creds")
        if not isinstance(creds, dict):
            raise MatrixError(400, "M_BAD_JSON", "'three_pid_creds' must be an object")
        client_secret = creds.get("client_secret", creds.get("clientSecret"))
        sid = creds.get("sid")
        if not isinstance(client_secret, str) or not isinstance(sid, str):
            raise MissingParam("Missing params: client_secret, sid")
        await self._threepids.add_validated(requester.user_id, sid, client_secret)
        return json_response({})

    async def delete_threepid(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/delete."""
        self._threepids.check_changes_enabled()
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        result = await self._threepids.delete(
            requester.user_id,
            _medium(body),
            str(get_str(body, "address")),
            get_str(body, "id_server", None),
        )
        return json_response({"id_server_unbind_result": result})

    async def bind_threepid(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/bind."""
        body = await json_object(request)
        requester = await self._ctx.requester(request)
        await self._threepids.bind(
            requester.user_id,
            str(get_str(body, "sid")),
            str(get_str(body, "client_secret")),
            str(get_str(body, "id_server")),
            str(get_str(body, "id_access_token")),
        )
        return json_response({})

    async def unbind_threepid(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/unbind."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        unbound = await self._threepids.unbind(
            requester.user_id,
            _medium(body),
            str(get_str(body, "address")),
            get_str(body, "id_server", None),
        )
        return json_response({"id_server_unbind_result": "success" if unbound else "no-support"})


def _required(query: Any, key: str) -> str:
    value = query.get(key)
    if not value:
        raise MissingParam(f"Missing string query parameter {key!r}")
    return str(value)


def threepid_routes(ctx: ClientContext, prefixes: tuple[str, ...]) -> list[tuple[str, str, Any]]:
    """The routes of ``ThreepidHandlers``: the versioned ones under ``prefixes`` and
    /unstable (where SyTest and older clients call bind/unbind), the pages of mailed
    links where Synapse serves them."""
    handlers = ThreepidHandlers(ctx)
    versioned = [
        ("POST", "/register/email/requestToken", handlers.register_email_token),
        ("POST", "/register/msisdn/requestToken", handlers.register_msisdn_token),
        ("POST", "/account/password/email/requestToken", handlers.password_email_token),
        ("POST", "/account/password/msisdn/requestToken", handlers.password_msisdn_token),
        ("POST", "/account/3pid/email/requestToken", handlers.add_email_token),
        ("POST", "/account/3pid/msisdn/requestToken", handlers.add_msisdn_token),
        ("GET", "/account/3pid", handlers.get_threepids),
        ("POST", "/account/3pid", handlers.add_threepid_legacy),
        ("POST", "/account/3pid/add", handlers.add_threepid),
        ("POST", "/account/3pid/delete", handlers.delete_threepid),
        ("POST", "/account/3pid/bind", handlers.bind_threepid),
        ("POST", "/account/3pid/unbind", handlers.unbind_threepid),
    ]
    routes = [
        (method, prefix + path, handler)
        for prefix in (*prefixes, "/_matrix/client/unstable")
        for method, path, handler in versioned
    ]
    for purpose in ValidationPurpose:
        page = handlers.submit_token_page(purpose)
        for base in ("/_synapse/client", "/_matrix/client/unstable"):
            path = f"{base}/{purpose.value}/email/submit_token"
            routes.append(("GET", path, page))
            routes.append(("POST", path, handlers.submit_token))
    return routes
