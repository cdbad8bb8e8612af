"""aiohttp middleware: Matrix errors, CORS, request size limits, the request's
context (its ID in every log line it causes), its metrics and the request log line."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from homeserver.errors import MatrixError, TooLarge, Unrecognized
from homeserver.events.json_codec import dumps_text
from homeserver.http.listener import forwarded_middleware
from homeserver.metrics.http import UNRECOGNISED, HttpMetrics
from homeserver.request_context import RequestContext, RequestIds, enter_request, leave_request

logger = logging.getLogger("homeserver.access")
error_logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
    "Access-Control-Expose-Headers": "ETag, Content-Disposition, Retry-After",
}

_SECRET_PARAMS = frozenset({"access_token", "token", "password", "ticket", "loginToken"})
# Path segments that are secrets: a registration token in the admin API's URLs.
_SECRET_PATH_PREFIX = "/_synapse/admin/v1/registration_tokens/"
_SECRET_PATH = re.compile(rf"^({re.escape(_SECRET_PATH_PREFIX)})(?!new$)[^/]+")


def error_response(error: MatrixError) -> web.Response:
    response = web.json_response(error.to_json(), status=error.status, dumps=compact_dumps)
    response.headers.update(error.headers)
    return response


def compact_dumps(value: object) -> str:
    return dumps_text(value)


def loggable_path(request: web.Request) -> str:
    """The path and query with every secret (parameter value or path segment) hidden:
    the query as the client sent it when it has no secret parameter (as Synapse logs
    it), else rebuilt with their values replaced."""
    path = request.path
    if path.startswith(_SECRET_PATH_PREFIX):
        path = _SECRET_PATH.sub(r"\1<redacted>", path)
    raw_query = request.rel_url.raw_query_string
    if not raw_query:
        return path
    if _SECRET_PARAMS.isdisjoint(request.query.keys()):
        return f"{path}?{raw_query}"
    query = [(k, "<redacted>" if k in _SECRET_PARAMS else v) for k, v in request.query.items()]
    return f"{path}?{urlencode(query, safe='<>')}"


def make_middlewares(
    max_body_size: int,
    *,
    x_forwarded: bool = False,
    request_ids: RequestIds | None = None,
    http_metrics: HttpMetrics | None = None,
    servlets: Mapping[AbstractRoute, str] | None = None,
) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    """The middleware of a listener's app; with ``x_forwarded`` the client address
    comes from X-Forwarded-For, for the request log line and every handler.

    Each request runs in a `RequestContext` with an ID from ``request_ids``; with
    ``http_metrics`` it is counted and timed under the ``servlets`` name of its
    route (filled in as routes are added to the app)."""
    ids = request_ids or RequestIds()
    names: Mapping[AbstractRoute, str] = servlets if servlets is not None else {}

    @web.middleware
    async def matrix_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.monotonic()
        method = request.method
        context = RequestContext(ids.next(method))
        token = enter_request(context)
        key: tuple[str, str] | None = None
        try:
            if http_metrics is not None:
                key = (method, names.get(request.match_info.route, UNRECOGNISED))
                http_metrics.started(key)
            response = await _respond(request, handler, max_body_size)
            elapsed = time.monotonic() - start
            if http_metrics is not None and key is not None:
                http_metrics.finished(key, context.tag, response.status, elapsed)
                key = None
            logger.log(
                logging.DEBUG if request.path == "/health" else logging.INFO,
                "%s %s %s %d %.1fms %s",
                request.remote,
                method,
                loggable_path(request),
                response.status,
                elapsed * 1000,
                context.requester or "-",
            )
            return response
        finally:
            if http_metrics is not None and key is not None:  # cancelled: no response
                http_metrics.abandoned(key)
            leave_request(token)

    if x_forwarded:
        return [forwarded_middleware, matrix_middleware]
    return [matrix_middleware]


async def _respond(
    request: web.Request, handler: Handler, max_body_size: int
) -> web.StreamResponse:
    """The handler's response, or the Matrix error it raised, with CORS headers."""
    response: web.StreamResponse
    try:
        if request.method == "OPTIONS":
            response = web.Response(status=204)
        elif (request.content_length or 0) > max_body_size and not _streams_body(request):
            raise TooLarge(f"Request body larger than {max_body_size} bytes")
        else:
            response = await handler(request)
    except MatrixError as exc:
        response = error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(TooLarge())
    except web.HTTPMethodNotAllowed:
        response = error_response(Unrecognized("Unrecognized request", status=405))
    except web.HTTPNotFound:
        response = error_response(Unrecognized())
    except web.HTTPException as exc:
        response = error_response(MatrixError(exc.status, "M_UNKNOWN", exc.reason))
    except Exception:
        error_logger.exception("request %s %s failed", request.method, loggable_path(request))
        response = error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))
    if not response.prepared:
        for key, value in CORS_HEADERS.items():
            response.headers.setdefault(key, value)
        if response.content_type == "application/json" and response.charset is not None:
            # RFC 8259 defines no charset parameter for JSON (it is UTF-8); Synapse
            # sends none, and clients compare the header literally.
            response.charset = None
    return response


def _streams_body(request: web.Request) -> bool:
    """Media uploads stream their bodies and enforce their own limit."""
    return request.path.startswith("/_matrix/media/")
