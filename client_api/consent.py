"""The privacy policy page (Synapse's consent resource), served with ``user_consent``:

    GET  /_matrix/consent?v=&u=&h=   -> the policy (with a form to agree if u/h given)
    POST /_matrix/consent            (v, u, h; form body or query) -> agreed

``u`` is the user (a user ID or localpart), ``h`` its HMAC under ``form_secret``:
403 if it does not match, 404 for an unknown user or policy version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from client_api.context import ClientContext
from client_api.sso_pages import html_response
from homeserver.auth import Requester
from homeserver.errors import MissingParam
from homeserver.registration.consent import ConsentService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATH = "/_matrix/consent"


async def _param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if (
        value is None
        and request.method == "POST"
        and request.content_type
        in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        )
    ):
        field = (await request.post()).get(name)
        value = field if isinstance(field, str) else None
    return value


class ConsentHandlers:
    def __init__(self, consent: ConsentService) -> None:
        self._consent = consent

    async def get_policy(self, request: web.Request) -> web.Response:
        """GET /_matrix/consent."""
        page = await self._consent.policy_page(
            await _param(request, "v") or None,
            await _param(request, "u") or "",
            await _param(request, "h"),
        )
        return html_response(page)

    async def agree(self, request: web.Request) -> web.Response:
        """POST /_matrix/consent."""
        values = {}
        for name in ("v", "u", "h"):
            value = await _param(request, name)
            if not value:
                raise MissingParam(f"Missing string query parameter {name}")
            values[name] = value
        page = await self._consent.agree(values["v"], values["u"], values["h"])
        return html_response(page)


def consent_routes(ctx: ClientContext) -> list[tuple[str, str, Handler]]:
    """The consent page's routes; none without ``user_consent``."""
    consent = ctx.registration.consent
    if consent is None:
        return []
    handlers = ConsentHandlers(consent)
    return [("GET", PATH, handlers.get_policy), ("POST", PATH, handlers.agree)]


async def require_consent(
    ctx: ClientContext, requester: Requester, membership_in: str | None = None
) -> None:
    """With ``user_consent.block_events_error``: 403 M_CONSENT_NOT_GIVEN for a user
    who has not agreed to the current policy (an application service acting, and
    the server notices user, are exempt, as in Synapse); ``membership_in``: the room
    of a join, knock or invite (the user's server notices room is exempt)."""
    consent = ctx.registration.consent
    if consent is None or consent.config.block_events_error is None:
        return
    if requester.app_service is not None:
        return
    notices = ctx.config.server_notices
    if notices is not None and requester.user_id == (
        f"@{notices.system_mxid_localpart}:{ctx.server_name}"
    ):
        return
    await consent.check_consented(requester.user_id, membership_in)
