"""The one table of federation routes: ``/_matrix/federation/*`` (resource
``federation``) and ``/_matrix/key/*`` (resource ``keys``).

Every federation route except ``/version`` goes through the X-Matrix authenticator
(``fed.authenticator.authenticated``), whose handlers get ``(origin, request)``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib import metadata

from aiohttp import web

from federation.context import FederationContext
from federation.key_server import KeyHandlers
from federation.media import get_federation_media_download, get_federation_media_thumbnail
from homeserver.http.middleware import compact_dumps
from homeserver.media.service import MediaService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]

FEDERATION_V1 = "/_matrix/federation/v1"
KEY_V2 = "/_matrix/key/v2"
SERVER_NAME = "homeserver"


def _version() -> str:
    try:
        return metadata.version("homeserver")
    except metadata.PackageNotFoundError:
        return "0.0.0"


async def get_version(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/version (server-server API: getVersion). No auth."""
    return web.json_response(
        {"server": {"name": SERVER_NAME, "version": _version()}}, dumps=compact_dumps
    )


def federation_routes(fed: FederationContext, media: MediaService | None) -> list[Route]:
    auth = fed.authenticator.authenticated
    routes: list[Route] = [
        ("GET", f"{FEDERATION_V1}/version", get_version),
    ]
    if media is not None:
        routes += [
            (
                "GET",
                f"{FEDERATION_V1}/media/download/{{mediaId}}",
                auth(functools.partial(get_federation_media_download, media)),
            ),
            (
                "GET",
                f"{FEDERATION_V1}/media/thumbnail/{{mediaId}}",
                auth(functools.partial(get_federation_media_thumbnail, media)),
            ),
        ]
    return routes


def key_routes(fed: FederationContext) -> list[Route]:
    keys = KeyHandlers(fed.key_server, fed.clock)
    return [
        ("GET", f"{KEY_V2}/server", keys.get_server_keys),
        ("GET", f"{KEY_V2}/server/{{keyId}}", keys.get_server_keys),
        ("GET", f"{KEY_V2}/query/{{serverName}}", keys.query_server_keys),
        ("GET", f"{KEY_V2}/query/{{serverName}}/{{keyId}}", keys.query_server_keys),
        ("POST", f"{KEY_V2}/query", keys.bulk_query_server_keys),
    ]
