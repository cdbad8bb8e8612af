"""Authenticating requests from other servers (server-server API "Request
Authentication").

Every federation endpoint but the version and key endpoints is wrapped by
:meth:`FederationAuthenticator.authenticated`: the handler receives the origin server
name only once the request's X-Matrix signature has been verified against the
origin's key (fetched through the key ring) over the request object of method, raw
target URI, origin, destination (us) and the JSON body. Failures are ``401
M_UNAUTHORIZED``: no header, a ``destination`` that is not us, a key that cannot be
found, a bad signature; a header that cannot be parsed or whose origin is not a
valid server name (``localhost:http``) is a bad request, ``400 M_UNAUTHORIZED``, as
Synapse answers (the spec names no status). An origin outside
``federation_domain_whitelist`` is refused with ``403 M_FORBIDDEN``.

A request that authenticates is the surest sign that its origin is up: the callbacks
of ``origin_seen`` hear of it before the handler runs (the federation sender ends the
origin's backoff and sends its backlog at once, as Synapse does on any inbound request).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from federation.client import federation_allowed
from federation.xmatrix import XMatrixCredentials, authorization_headers, parse_x_matrix
from federation.xmatrix import request_object as build_request_object
from homeserver.clock import Clock
from homeserver.errors import Forbidden, MatrixError, NotJson
from homeserver.events.errors import SignatureError
from homeserver.events.identifiers import is_valid_server_name
from homeserver.request_context import note_requester

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OriginHandler = Callable[[str, web.Request], Awaitable[web.StreamResponse]]
"""A federation handler: ``handler(origin, request)`` with the authenticated origin."""
OriginSeen = Callable[[str], None]

ORIGIN_KEY = web.RequestKey("federation_origin", str)


class Unauthorized(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(401, "M_UNAUTHORIZED", message)


class MalformedAuthorization(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "M_UNAUTHORIZED", message)


class SignatureVerifier(Protocol):
    async def verify_json_for_server(
        self, obj: Mapping[str, Any], server_name: str, min_valid_ts: int
    ) -> None: ...


class FederationAuthenticator:
    """Checks the X-Matrix signature of incoming federation requests."""

    def __init__(
        self,
        server_name: str,
        verifier: SignatureVerifier,
        clock: Clock,
        *,
        domain_whitelist: frozenset[str] | None = None,
    ) -> None:
        self.server_name = server_name
        self._verifier = verifier
        self._clock = clock
        self._whitelist = domain_whitelist
        self.origin_seen: list[OriginSeen] = []

    async def authenticate(self, request: web.Request) -> str:
        """The verified origin of ``request``; raises 401 / 403 Matrix errors."""
        credentials = self._credentials(request)
        origin = credentials[0].origin
        if not federation_allowed(origin, self._whitelist):
            raise Forbidden(f"Federation denied with {origin}")
        content = await _json_content(request)
        obj = build_request_object(
            request.method, request.raw_path, origin, self.server_name, content
        )
        obj["signatures"] = {origin: {c.key: c.sig for c in credentials}}
        try:
            await self._verifier.verify_json_for_server(obj, origin, self._clock.time_ms())
        except SignatureError as exc:
            logger.info("rejecting %s %s from %s: %s", request.method, request.path, origin, exc)
            raise Unauthorized(f"Failed to verify the request signature of {origin}") from None
        request[ORIGIN_KEY] = origin
        for callback in self.origin_seen:
            try:
                callback(origin)
            except Exception:
                logger.exception("origin_seen callback failed for %s", origin)
        return origin

    def _credentials(self, request: web.Request) -> list[XMatrixCredentials]:
        headers = authorization_headers(request.headers)
        if not headers:
            raise Unauthorized("Missing X-Matrix Authorization header")
        try:
            credentials = [parse_x_matrix(header) for header in headers]
        except ValueError as exc:
            raise MalformedAuthorization(
                f"Malformed X-Matrix Authorization header: {exc}"
            ) from None
        origin = credentials[0].origin
        if not all(is_valid_server_name(c.origin) for c in credentials):
            raise MalformedAuthorization("Invalid origin in X-Matrix Authorization header")
        for c in credentials:
            if c.origin != origin:
                raise Unauthorized("X-Matrix Authorization headers name different origins")
            if c.destination is not None and c.destination != self.server_name:
                raise Unauthorized(f"Request is for {c.destination}, not this server")
        return credentials

    def authenticated(self, handler: OriginHandler) -> Handler:
        """An aiohttp handler that authenticates, then calls ``handler(origin, request)``."""

        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            origin = await self.authenticate(request)
            note_requester(origin)
            return await handler(origin, request)

        return wrapped


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


async def _json_content(request: web.Request) -> Any:
    """The parsed body (which the signature covers), or None without one."""
    if not request.body_exists:
        return None
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise NotJson("Content not JSON.") from None
