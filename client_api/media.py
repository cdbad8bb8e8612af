"""The content repository (client-server API: Content repository): thin handlers over
`MediaService`, and `media_routes`, the table of every media route.

Authenticated endpoints live under ``/_matrix/client/v1/media``; upload and create
stay under ``/_matrix/media``; the deprecated unauthenticated downloads under
``/_matrix/media/v3`` serve only media from before the freeze.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from aiohttp import web

from client_api.context import ClientContext
from client_api.routes import Handler, Route
from client_api.versions import json_response
from homeserver.errors import InvalidParam, MissingParam, Unrecognized
from homeserver.http.body import query_bool, query_int
from homeserver.media.preview import UrlPreviewer
from homeserver.media.responses import media_file_response
from homeserver.media.service import DEFAULT_TIMEOUT_MS, MediaService
from homeserver.media.thumbnailer import Method

READ_CHUNK_BYTES = 64 * 1024
MAX_FILENAME_LENGTH = 1024
MAX_THUMBNAIL_DIMENSION = 10_000


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives (``request.content``: no client_max_size buffering)."""
    async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
        yield chunk


def _upload_filename(request: web.Request) -> str | None:
    filename = request.query.get("filename")
    if filename is not None and len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidParam(f"filename is longer than {MAX_FILENAME_LENGTH} characters")
    return filename or None


def _thumbnail_params(request: web.Request) -> tuple[int, int, Method, bool]:
    for key in ("width", "height"):
        if key not in request.query:
            raise MissingParam(f"Missing query parameter: {key}")
    width = query_int(request, "width", 0, minimum=1, maximum=MAX_THUMBNAIL_DIMENSION)
    height = query_int(request, "height", 0, minimum=1, maximum=MAX_THUMBNAIL_DIMENSION)
    method = request.query.get("method", "scale")
    if method not in ("crop", "scale"):
        raise InvalidParam("method must be crop or scale")
    animated = query_bool(request, "animated", False)
    return width, height, cast("Method", method), animated


def _timeout_ms(request: web.Request) -> int:
    return query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS)


class MediaHandlers:
    def __init__(
        self, ctx: ClientContext, media: MediaService, previewer: UrlPreviewer | None
    ) -> None:
        self._ctx = ctx
        self._media = media
        self._previewer = previewer

    # -- uploads ------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        """POST /_matrix/media/v3/upload (Content repository: uploadContent)."""
        requester = await self._ctx.requester(request)
        content_uri = await self._media.upload(
            requester.user_id,
            _body_chunks(request),
            content_type=request.headers.get("Content-Type"),
            filename=_upload_filename(request),
            content_length=request.content_length,
        )
        return json_response({"content_uri": content_uri})

    async def create(self, request: web.Request) -> web.Response:
        """POST /_matrix/media/v1/create (Content repository: createContent)."""
        requester = await self._ctx.requester(request)
        content_uri, expires = await self._media.create(requester.user_id)
        return json_response({"content_uri": content_uri, "unused_expires_at": expires})

    async def upload_to(self, request: web.Request) -> web.Response:
        """PUT /_matrix/media/v3/upload/{serverName}/{mediaId} (uploadContentToMXC)."""
        requester = await self._ctx.requester(request)
        await self._media.upload_to(
            requester.user_id,
            request.match_info["serverName"],
            request.match_info["mediaId"],
            _body_chunks(request),
            content_type=request.headers.get("Content-Type"),
            filename=_upload_filename(request),
            content_length=request.content_length,
        )
        return json_response({})

    # -- authenticated downloads (v1.11) --------------------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]
        (Content repository: getContentAuthed, getContentOverrideNameAuthed)."""
        await self._ctx.requester(request)
        return await self._download(request, legacy=False)

    async def thumbnail(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}
        (Content repository: getContentThumbnailAuthed; Thumbnails)."""
        await self._ctx.requester(request)
        return await self._thumbnail(request, legacy=False)

    async def config(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/media/config and the deprecated /_matrix/media/v3/config
        (Content repository: getConfigAuthed, getConfig)."""
        await self._ctx.requester(request)
        return json_response({"m.upload.size": self._media.limits.max_upload_size})

    async def preview_url(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/media/preview_url and the deprecated
        /_matrix/media/v3/preview_url (Content repository: getUrlPreviewAuthed)."""
        requester = await self._ctx.requester(request)
        if self._previewer is None:
            raise Unrecognized("URL previews are disabled on this server")
        url = request.query.get("url")
        if not url:
            raise MissingParam("Missing query parameter: url")
        preview = await self._previewer.preview(url, requester.user_id)
        return json_response(preview)

    # -- deprecated unauthenticated downloads ---------------------------------------------

    async def legacy_download(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}] (getContent,
        deprecated): only media from before the freeze (unauthenticated_media_allowed_before)."""
        return await self._download(request, legacy=True)

    async def legacy_thumbnail(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (getContentThumbnail,
        deprecated): only media from before the freeze."""
        return await self._thumbnail(request, legacy=True)

    # -- shared ---------------------------------------------------------------------------

    async def _download(self, request: web.Request, *, legacy: bool) -> web.StreamResponse:
        media = await self._media.get_download(
            request.match_info["serverName"],
            request.match_info["mediaId"],
            timeout_ms=_timeout_ms(request),
            allow_remote=query_bool(request, "allow_remote", True) if legacy else True,
            legacy=legacy,
        )
        return media_file_response(
            media, filename=request.match_info.get("fileName"), private=not legacy
        )

    async def _thumbnail(self, request: web.Request, *, legacy: bool) -> web.StreamResponse:
        width, height, method, animated = _thumbnail_params(request)
        media = await self._media.get_thumbnail(
            request.match_info["serverName"],
            request.match_info["mediaId"],
            width,
            height,
            method,
            animated=animated,
            timeout_ms=_timeout_ms(request),
            allow_remote=query_bool(request, "allow_remote", True) if legacy else True,
            legacy=legacy,
        )
        return media_file_response(media, private=not legacy, inline=True)


LEGACY_MEDIA_PREFIXES = ("/_matrix/media/v3", "/_matrix/media/r0")


def media_routes(
    ctx: ClientContext, media: MediaService, previewer: UrlPreviewer | None
) -> list[Route]:
    """Every route of the ``media`` resource."""
    handlers = MediaHandlers(ctx, media, previewer)
    routes: list[Route] = [
        ("POST", "/_matrix/media/v1/create", handlers.create),
        ("GET", "/_matrix/client/v1/media/config", handlers.config),
        ("GET", "/_matrix/client/v1/media/preview_url", handlers.preview_url),
        *_get_and_head(
            "/_matrix/client/v1/media/download/{serverName}/{mediaId}", handlers.download
        ),
        *_get_and_head(
            "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}",
            handlers.download,
        ),
        *_get_and_head(
            "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}", handlers.thumbnail
        ),
    ]
    for prefix in LEGACY_MEDIA_PREFIXES:
        routes += [
            ("POST", f"{prefix}/upload", handlers.upload),
            ("PUT", f"{prefix}/upload/{{serverName}}/{{mediaId}}", handlers.upload_to),
            ("GET", f"{prefix}/config", handlers.config),
            ("GET", f"{prefix}/preview_url", handlers.preview_url),
            *_get_and_head(
                f"{prefix}/download/{{serverName}}/{{mediaId}}", handlers.legacy_download
            ),
            *_get_and_head(
                f"{prefix}/download/{{serverName}}/{{mediaId}}/{{fileName}}",
                handlers.legacy_download,
            ),
            *_get_and_head(
                f"{prefix}/thumbnail/{{serverName}}/{{mediaId}}", handlers.legacy_thumbnail
            ),
        ]
    return routes


def _get_and_head(path: str, handler: Handler) -> list[Route]:
    return [("GET", path, handler), ("HEAD", path, handler)]
