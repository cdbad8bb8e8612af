"""The fallback pages of user-interactive auth stages (client-server API,
"Fallback"), as Synapse serves them:

    GET  /auth/m.login.recaptcha/fallback/web?session=   -> the captcha
    POST /auth/m.login.recaptcha/fallback/web            (session, g-recaptcha-response)
    GET  /auth/m.login.terms/fallback/web?session=       -> agree to the privacy policy
    POST /auth/m.login.terms/fallback/web                (session)
    GET  /auth/m.login.registration_token/fallback/web?session=
    POST /auth/m.login.registration_token/fallback/web   (session, token)
    GET  /auth/m.login.sso/fallback/web?session=         -> re-authenticate (client_api/sso.py)

A POST that completes its stage shows the page that tells the client so; a failed
one shows the stage's page again with the error. Parameters are read from the
query string or the form body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from client_api.context import ClientContext, client_ip
from client_api.registration_pages import (
    fallback_success_page,
    recaptcha_page,
    registration_token_page,
    terms_page,
)
from client_api.sso import SsoHandlers
from client_api.sso_pages import html_response
from homeserver.errors import MatrixError, MissingParam, Unrecognized
from homeserver.registration.flows import RECAPTCHA, REGISTRATION_TOKEN, TERMS
from homeserver.sso import SSO_STAGE


async def _param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if (
        not value
        and request.method == "POST"
        and request.content_type
        in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        )
    ):
        form = await request.post()
        field = form.get(name)
        value = field if isinstance(field, str) else None
    return value or None


class AuthFallbackHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        self._sso = SsoHandlers(ctx) if ctx.sso.enabled else None

    def _action(self, request: web.Request) -> str:
        return request.path

    def _stage(self, request: web.Request) -> str:
        """The stage of the path, if this server offers its fallback (404 otherwise)."""
        stage = request.match_info["authType"]
        stages = self._ctx.registration
        offered = {
            RECAPTCHA: stages.captcha_enabled
            and self._ctx.config.registration_guards.recaptcha_public_key,
            TERMS: stages.consent is not None,
            REGISTRATION_TOKEN: True,
            SSO_STAGE: self._sso is not None,
        }
        if not offered.get(stage):
            raise Unrecognized("Unknown auth stage type")
        return stage

    def _page(self, request: web.Request, stage: str, session: str, error: str | None) -> str:
        action = self._action(request)
        if stage == RECAPTCHA:
            return recaptcha_page(
                session,
                action,
                self._ctx.config.registration_guards.recaptcha_public_key or "",
                error,
            )
        if stage == TERMS:
            consent = self._ctx.registration.consent
            assert consent is not None
            return terms_page(session, action, consent.policy_url(), error)
        return registration_token_page(session, action, error)

    async def get(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/client/v3/auth/{authType}/fallback/web."""
        stage = self._stage(request)
        if stage == SSO_STAGE:
            assert self._sso is not None
            return await self._sso.auth_fallback(request)
        session = await _param(request, "session")
        if session is None:
            raise MissingParam("No session supplied")
        return html_response(self._page(request, stage, session, None))

    async def post(self, request: web.Request) -> web.StreamResponse:
        """POST /_matrix/client/v3/auth/{authType}/fallback/web."""
        stage = self._stage(request)
        if stage == SSO_STAGE:
            raise Unrecognized("Fallback SSO auth does not support POST requests.")
        session = await _param(request, "session")
        if session is None:
            raise MissingParam("No session supplied")
        stages = self._ctx.registration
        try:
            if stage == RECAPTCHA:
                response = await _param(request, "g-recaptcha-response")
                if response is None:
                    raise MissingParam("No captcha response supplied")
                await stages.check_captcha(response, client_ip(request))
                result: object = True
            elif stage == TERMS:
                result = True
            else:
                token = await _param(request, "token")
                if token is None:
                    raise MissingParam("Missing string query parameter token")
                result = await stages.check_registration_token(token)
        except MatrixError as exc:
            if exc.status != 401:
                raise
            return html_response(self._page(request, stage, session, exc.message))
        await self._ctx.uia.complete_stage(session, stage, result)
        return html_response(fallback_success_page())


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_fallback_routes(
    ctx: ClientContext, prefixes: tuple[str, ...]
) -> list[tuple[str, str, Handler]]:
    """The fallback routes under each client API prefix."""
    fallback = AuthFallbackHandlers(ctx)
    path = "/auth/{authType}/fallback/web"
    routes: list[tuple[str, str, Handler]] = []
    for prefix in prefixes:
        routes.append(("GET", prefix + path, fallback.get))
        routes.append(("POST", prefix + path, fallback.post))
    return routes
