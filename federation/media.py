"""This server's side of the federation content repository (server-server API: Content
Repository): ``GET /_matrix/federation/v1/media/download/{mediaId}`` and
``/_matrix/federation/v1/media/thumbnail/{mediaId}``.

Each handler takes the origin server name already authenticated from the request's
X-Matrix signature (federation request authentication routes them once it exists) and
answers ``multipart/mixed`` with exactly two parts: an ``application/json`` metadata
part (always ``{}`` for now) and the media bytes with their own Content-Type and
Content-Disposition. Only this server's own media is served: remote servers must ask
the media's origin, never have us proxy it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import BinaryIO, cast

from aiohttp import web

from homeserver.errors import InvalidParam, MissingParam
from homeserver.http.body import query_bool, query_int
from homeserver.media.headers import content_disposition
from homeserver.media.service import DEFAULT_TIMEOUT_MS, MediaService, ServedMedia
from homeserver.media.thumbnailer import Method

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
MAX_THUMBNAIL_DIMENSION = 10_000


async def get_federation_media_download(
    media: MediaService, origin: str, request: web.Request
) -> web.StreamResponse:
    """GET /_matrix/federation/v1/media/download/{mediaId} (server-server API: getContent)."""
    served = await media.get_download(
        media.server_name,
        request.match_info["mediaId"],
        timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS),
        allow_remote=False,
    )
    logger.debug("serving media %s to %s", request.match_info["mediaId"], origin)
    disposition = content_disposition(served.content_type, served.filename)
    return await _multipart_response(request, served, disposition)


async def get_federation_media_thumbnail(
    media: MediaService, origin: str, request: web.Request
) -> web.StreamResponse:
    """GET /_matrix/federation/v1/media/thumbnail/{mediaId} (server-server API:
    getContentThumbnail)."""
    for key in ("width", "height"):
        if key not in request.query:
            raise MissingParam(f"Missing query parameter: {key}")
    width = query_int(request, "width", 0, minimum=1, maximum=MAX_THUMBNAIL_DIMENSION)
    height = query_int(request, "height", 0, minimum=1, maximum=MAX_THUMBNAIL_DIMENSION)
    method = request.query.get("method", "scale")
    if method not in ("crop", "scale"):
        raise InvalidParam("method must be crop or scale")
    served = await media.get_thumbnail(
        media.server_name,
        request.match_info["mediaId"],
        width,
        height,
        cast("Method", method),
        animated=query_bool(request, "animated", False),
        timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS),
        allow_remote=False,
    )
    logger.debug("serving a thumbnail of %s to %s", request.match_info["mediaId"], origin)
    disposition = content_disposition(served.content_type, served.filename)
    if disposition.startswith("attachment"):
        disposition = "inline" + disposition[len("attachment") :]
    return await _multipart_response(request, served, disposition)


async def _multipart_response(
    request: web.Request, served: ServedMedia, disposition: str
) -> web.StreamResponse:
    """Stream ``{}`` and the file as the two parts of a multipart/mixed body."""
    boundary = secrets.token_hex(16)
    content_type = served.content_type or "application/octet-stream"
    head = (
        f"--{boundary}\r\n"
        "Content-Type: application/json\r\n\r\n"
        "{}\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Disposition: {disposition}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    response = web.StreamResponse(headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})
    response.content_length = len(head) + served.size + len(tail)
    await response.prepare(request)
    await response.write(head)
    handle: BinaryIO = await asyncio.to_thread(open, served.path, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            await response.write(chunk)
    finally:
        await asyncio.to_thread(handle.close)
    await response.write(tail)
    await response.write_eof()
    return response
