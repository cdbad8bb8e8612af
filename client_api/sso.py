"""Single sign-on endpoints (client-server API: "SSO client login/authentication",
and the "Fallback" of user-interactive auth for m.login.sso), served when an
identity provider is configured.

    GET /login/sso/redirect?redirectUrl=        -> 302 to the provider
    GET /login/sso/redirect/{idpId}?redirectUrl=
    GET /login/cas/redirect?redirectUrl=        (the r0.4 name of the same)
    GET /login/cas/ticket?ticket=&redirectUrl=  -> the client, with a loginToken
    GET /login/cas/ticket?ticket=&session=      -> UIA stage done (or refused)
    GET /auth/m.login.sso/fallback/web?session= -> page sending the user to re-authenticate
    GET /_synapse/client/pick_idp?redirectUrl=[&idp=]  -> provider picker (several providers)
    GET|POST /_synapse/client/oidc/callback?code=&state= -> the client, with a loginToken
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.sso_pages import (
    error_page,
    html_response,
    login_confirm_page,
    pick_idp_page,
    redirect_response,
    uia_confirm_page,
    uia_success_page,
    uia_wrong_user_page,
)
from homeserver.errors import MissingParam, Unrecognized
from homeserver.sso import (
    PICK_IDP_PATH,
    SSO_STAGE,
    IdentityProvider,
    LoginGranted,
    SsoError,
    SsoService,
    UiaChecked,
)
from homeserver.sso.oidc import (
    CALLBACK_PATH,
    SESSION_COOKIE,
    SESSION_COOKIE_NO_SAMESITE,
    SESSION_COOKIE_PATH,
    SESSION_LIFETIME_MS,
)
from homeserver.sso.redirect_urls import check_client_redirect_url

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def idp_json(provider: IdentityProvider) -> dict[str, str]:
    """A provider as GET /login lists it (``icon`` and ``brand`` only when set)."""
    body = {"id": provider.id, "name": provider.name}
    if provider.icon:
        body["icon"] = provider.icon
    if provider.brand:
        body["brand"] = provider.brand
    return body


def sso_login_flows(sso: SsoService) -> list[dict[str, Any]]:
    """The login flows single sign-on adds to GET /login, as Synapse lists them: the
    deprecated m.login.cas (for older clients), m.login.sso with its providers, and
    m.login.token (which SSO logins end with)."""
    if not sso.enabled:
        return []
    flows: list[dict[str, Any]] = []
    if sso.cas is not None:
        # only CAS has it (Synapse)
        flows.append({"type": "m.login.cas"})
    flows.append(
        {
            "type": "m.login.sso",
            "identity_providers": [idp_json(idp) for idp in sso.identity_providers],
        }
    )
    flows.append({"type": "m.login.token"})
    return flows


def set_session_cookies(response: web.Response, cookie: str) -> None:
    """The OIDC session cookie, twice as Synapse sets it: with SameSite=None (so a
    form_post callback from the provider's site carries it) and without (for
    browsers that take SameSite=None for Strict)."""
    for name, samesite in ((SESSION_COOKIE, "None"), (SESSION_COOKIE_NO_SAMESITE, None)):
        response.set_cookie(
            name,
            cookie,
            max_age=SESSION_LIFETIME_MS // 1000,
            path=SESSION_COOKIE_PATH,
            httponly=True,
            secure=True,
            samesite=samesite,
        )


def _query_param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value or None


class SsoHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def redirect(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/login/sso/redirect[/{idpId}] (and /login/cas/redirect):
        send the browser to the identity provider (or the picker, with several)."""
        client_redirect_url = _query_param(request, "redirectUrl")
        if client_redirect_url is None:
            raise MissingParam("Missing string query parameter redirectUrl")
        return await self.redirect_to(request, client_redirect_url, request.match_info.get("idpId"))

    async def pick_idp(self, request: web.Request) -> web.Response:
        """GET /_synapse/client/pick_idp?redirectUrl=[&idp=]: the page listing the
        providers; with ``idp``, straight on to that provider."""
        client_redirect_url = _query_param(request, "redirectUrl")
        if client_redirect_url is None:
            raise MissingParam("Missing string query parameter redirectUrl")
        idp = _query_param(request, "idp")
        if idp is None:
            check_client_redirect_url(client_redirect_url)
            return html_response(
                pick_idp_page(
                    client_redirect_url, self._ctx.sso.identity_providers, self._ctx.server_name
                )
            )
        return await self.redirect_to(request, client_redirect_url, idp)

    async def redirect_to(
        self, request: web.Request, client_redirect_url: str, idp: str | None
    ) -> web.Response:
        try:
            target = await self._ctx.sso.login_redirect(client_redirect_url, idp)
        except SsoError as exc:
            return html_response(error_page(exc.error, exc.description), exc.status)
        response = redirect_response(target.location)
        if target.cookie is not None:
            set_session_cookies(response, target.cookie)
        return response

    async def cas_ticket(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/login/cas/ticket: where CAS sends the browser back."""
        ticket = _query_param(request, "ticket")
        if ticket is None:
            raise MissingParam("Missing string query parameter ticket")
        client_redirect_url = _query_param(request, "redirectUrl")
        session_id = _query_param(request, "session")
        if client_redirect_url is None and session_id is None:
            raise MissingParam("Missing string query parameter redirectUrl or session")
        try:
            outcome = await self._ctx.sso.handle_cas_ticket(ticket, client_redirect_url, session_id)
        except SsoError as exc:
            return html_response(error_page(exc.error, exc.description), exc.status)
        return self._outcome_page(outcome)

    async def oidc_callback(self, request: web.Request) -> web.Response:
        """GET|POST /_synapse/client/oidc/callback: where an OpenID provider sends the
        browser back (POST for ``response_mode=form_post``). The session cookies are
        cleared whatever happens: a code is only ever tried once."""
        params: dict[str, str] = {k: v for k, v in request.query.items()}
        if request.method == "POST":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        cookie = request.cookies.get(SESSION_COOKIE) or request.cookies.get(
            SESSION_COOKIE_NO_SAMESITE
        )
        try:
            outcome = await self._ctx.sso.handle_oidc_callback(params, cookie)
            response = self._outcome_page(outcome)
        except SsoError as exc:
            response = html_response(error_page(exc.error, exc.description), exc.status)
        for name in (SESSION_COOKIE, SESSION_COOKIE_NO_SAMESITE):
            response.del_cookie(name, path=SESSION_COOKIE_PATH)
        return response

    def _outcome_page(self, outcome: LoginGranted | UiaChecked) -> web.Response:
        if isinstance(outcome, UiaChecked):
            if outcome.proved:
                return html_response(uia_success_page())
            return html_response(uia_wrong_user_page(outcome.user_id, self._ctx.server_name))
        if outcome.trusted:
            return redirect_response(outcome.redirect_url)
        return html_response(
            login_confirm_page(
                outcome.redirect_url,
                outcome.display_url,
                outcome.user_id,
                self._ctx.server_name,
                outcome.new_user,
            )
        )

    async def auth_fallback(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/auth/{authType}/fallback/web (client-server API,
        "Fallback"): for m.login.sso, a page asking the session's user to confirm the
        operation by signing in again."""
        session_id = _query_param(request, "session")
        if session_id is None:
            raise MissingParam("No session supplied")
        if request.match_info["authType"] != SSO_STAGE:
            raise Unrecognized("Unknown auth stage type")
        try:
            target = await self._ctx.sso.ui_auth_redirect(session_id)
        except SsoError as exc:
            return html_response(error_page(exc.error, exc.description), exc.status)
        response = html_response(
            uia_confirm_page(target.request, target.redirect_url, target.provider)
        )
        if target.cookie is not None:
            set_session_cookies(response, target.cookie)
        return response


def sso_routes(
    ctx: ClientContext, prefixes: tuple[str, ...], legacy_prefix: str
) -> list[tuple[str, str, Handler]]:
    """The SSO routes under each client API prefix (the login ones also under the
    legacy ``api/v1`` prefix, as Synapse); none when no provider is configured."""
    if not ctx.sso.enabled:
        return []
    sso = SsoHandlers(ctx)
    login: list[tuple[str, str, Handler]] = [("GET", "/login/sso/redirect", sso.redirect)]
    if ctx.sso.cas is not None:
        login += [
            ("GET", "/login/cas/redirect", sso.redirect),
            ("GET", "/login/cas/ticket", sso.cas_ticket),
        ]
    routes = [
        (m, prefix + path, h) for prefix in (*prefixes, legacy_prefix) for m, path, h in login
    ]
    versioned: list[tuple[str, str, Handler]] = [
        ("GET", "/login/sso/redirect/{idpId}", sso.redirect),
        # (its fallback page is routed by client_api/auth_fallback.py with the others)
    ]
    routes += [(m, prefix + path, h) for prefix in prefixes for m, path, h in versioned]
    routes.append(("GET", "/" + PICK_IDP_PATH, sso.pick_idp))
    if ctx.sso.oidc:
        routes.append(("GET", "/" + CALLBACK_PATH, sso.oidc_callback))
        routes.append(("POST", "/" + CALLBACK_PATH, sso.oidc_callback))
    return routes
