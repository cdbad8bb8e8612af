"""What a listener's options add to its routes: gzip (``compress``), ``/health``, and
the client address from a reverse proxy (``x_forwarded``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def health(request: web.Request) -> web.Response:
    """GET /health: 200 "OK" while the process serves requests (as Synapse's)."""
    return web.Response(text="OK", content_type="text/plain")


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (``gzip;q=0`` refuses it)."""
    wildcard = False
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding.strip() in ("gzip", "x-gzip"):
            return quality > 0
        if coding.strip() == "*":
            wildcard = quality > 0
    return wildcard


def gzip_json(handler: Handler) -> Handler:
    """Wrap a handler so its JSON responses are gzipped for clients that accept it."""

    async def compressed(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if (
            isinstance(response, web.Response)
            and response.content_type == "application/json"
            and accepts_gzip(request.headers.get("Accept-Encoding", ""))
        ):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    return compressed


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Behind a reverse proxy (``x_forwarded: true``): the client is the first address
    of X-Forwarded-For, and the scheme https unless X-Forwarded-Proto says http. As
    Synapse, which also takes the first address (the proxy must overwrite the header
    rather than append to one sent by the client)."""
    client = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    if client:
        proto = request.headers.get("X-Forwarded-Proto", "https").strip().lower()
        request = request.clone(remote=client, scheme="http" if proto == "http" else "https")
    return await handler(request)
