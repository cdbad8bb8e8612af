"""Fetching media of other servers (server-server API: Content Repository).

``GET /_matrix/federation/v1/media/download/{mediaId}?timeout_ms=`` answers
``multipart/mixed``: a JSON metadata part, then either the media itself or a part
with a ``Location`` header naming a URL to fetch it from. A ``Location`` is followed
with a plain (unsigned) ``GET`` under the same outbound address policy as federation
(``ip_range_blacklist``, with the federation and general whitelists as exceptions),
checked on every redirect hop; the URL is used once and never stored.

A server that answers the new endpoint with ``404 M_UNRECOGNIZED`` predates it: the
spec says to fall back to the deprecated ``GET /_matrix/media/v3/download/{serverName}/
{mediaId}`` with ``allow_remote=false``, which answers the bytes directly. (Thumbnails
of remote media are made here from the cached original, so no remote thumbnail
endpoint, new or old, is ever called.)

The media is handed to the media service as a stream, which enforces the size cap as
it reads (a declared ``Content-Length`` over the cap is refused before reading).
Every failure becomes a Matrix error (404, 504 not yet uploaded, or 502), never a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from email.message import Message
from urllib.parse import quote

import aiohttp
from aiohttp import BodyPartReader, MultipartReader
from yarl import URL

from federation.client import FederationClient
from federation.discovery import ip_literal
from federation.errors import FederationDenied, FederationError
from homeserver.errors import MatrixError, NotFound
from homeserver.media.remote import RemoteMedia, remote_too_large

CHUNK_SIZE = 64 * 1024
# Longest wait for the next chunk of a media body before giving up on it.
READ_IDLE_TIMEOUT_S = 60.0
MAX_LOCATION_REDIRECTS = 5
MAX_METADATA_BYTES = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def _filename(disposition: str | None) -> str | None:
    if not disposition:
        return None
    message = Message()
    message["content-disposition"] = disposition
    name = message.get_filename()
    return name if isinstance(name, str) else None


def _bad_answer(what: str) -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", what)


def _media_error(exc: FederationError) -> MatrixError:
    """What our client is told when the remote server's answer was an error."""
    if isinstance(exc, FederationDenied):
        return exc.to_matrix_error()
    if exc.status == 404:
        return NotFound("Remote media not found")
    if exc.errcode == "M_NOT_YET_UPLOADED":
        return MatrixError(504, "M_NOT_YET_UPLOADED", "Remote media not yet uploaded")
    return _bad_answer(f"Could not fetch remote media: {exc}")


async def _skip_metadata(part: BodyPartReader) -> None:
    """Read past the metadata part (always ``{}`` today), refusing a huge one."""
    size = 0
    while chunk := await part.read_chunk(CHUNK_SIZE):
        size += len(chunk)
        if size > MAX_METADATA_BYTES:
            raise _bad_answer("Remote media metadata is too large")


async def _stream(
    read: Callable[[int], Awaitable[bytes]], stack: AsyncExitStack
) -> AsyncIterator[bytes]:
    """The body, chunk by chunk; the answer is closed when the stream ends or is
    abandoned. A broken or stalled body is a 502."""
    try:
        while True:
            try:
                async with asyncio.timeout(READ_IDLE_TIMEOUT_S):
                    chunk = await read(CHUNK_SIZE)
            except (aiohttp.ClientError, OSError, ValueError, TimeoutError) as exc:
                raise _bad_answer("Reading remote media failed") from exc
            if not chunk:
                return
            yield chunk
    finally:
        await stack.aclose()


class FederationMediaFetcher:
    """The media service's ``RemoteMediaFetcher`` over federation."""

    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def fetch_media(
        self, server_name: str, media_id: str, *, max_size: int, timeout_ms: int
    ) -> RemoteMedia:
        timeout_s = max(1.0, timeout_ms / 1000)
        query = {"timeout_ms": str(timeout_ms)}
        path = f"/_matrix/federation/v1/media/download/{quote(media_id, safe='')}"
        try:
            stack, response = await self._open(server_name, path, query, timeout_s)
        except FederationError as exc:
            if exc.status == 404 and exc.errcode == "M_UNRECOGNIZED":
                return await self._fetch_deprecated(server_name, media_id, query, timeout_s)
            raise _media_error(exc) from exc
        try:
            async with asyncio.timeout(READ_IDLE_TIMEOUT_S):
                reader = MultipartReader.from_response(response)
                metadata = await reader.next()
                if not isinstance(metadata, BodyPartReader):
                    raise _bad_answer("Remote media answer has no metadata part")
                await _skip_metadata(metadata)
                media = await reader.next()
                if not isinstance(media, BodyPartReader):
                    raise _bad_answer("Remote media answer has no content part")
        except (aiohttp.ClientError, OSError, ValueError, AssertionError, TimeoutError) as exc:
            await stack.aclose()
            raise _bad_answer("Remote media answer is not valid multipart") from exc
        except BaseException:
            await stack.aclose()
            raise
        location = media.headers.get("Location")
        if location is not None:
            await stack.aclose()
            return await self._follow_location(location, media.headers, max_size, timeout_s)
        return RemoteMedia(
            media.headers.get("Content-Type"),
            _filename(media.headers.get("Content-Disposition")),
            _stream(media.read_chunk, stack),
        )

    async def _open(
        self, server_name: str, path: str, query: Mapping[str, str], timeout_s: float
    ) -> tuple[AsyncExitStack, aiohttp.ClientResponse]:
        """A signed GET whose 200 answer stays open (closed with the returned stack)."""
        stack = AsyncExitStack()
        try:
            response = await stack.enter_async_context(
                self._client.open_stream(server_name, path, query, timeout_s=timeout_s)
            )
        except BaseException:
            await stack.aclose()
            raise
        return stack, response

    async def _fetch_deprecated(
        self, server_name: str, media_id: str, query: Mapping[str, str], timeout_s: float
    ) -> RemoteMedia:
        """The fallback for servers without the federation media endpoints: the
        deprecated client-server download, with ``allow_remote=false`` as the spec
        requires (the remote must not fetch it from elsewhere on our behalf)."""
        path = (
            f"/_matrix/media/v3/download/{quote(server_name, safe='')}/{quote(media_id, safe='')}"
        )
        try:
            stack, response = await self._open(
                server_name, path, {**query, "allow_remote": "false"}, timeout_s
            )
        except FederationError as exc:
            raise _media_error(exc) from exc
        return RemoteMedia(
            response.headers.get("Content-Type"),
            _filename(response.headers.get("Content-Disposition")),
            _stream(response.content.read, stack),
        )

    async def _follow_location(
        self, location: str, part_headers: Mapping[str, str], max_size: int, timeout_s: float
    ) -> RemoteMedia:
        """Fetch the media from where the multipart answer's ``Location`` points."""
        stack = AsyncExitStack()
        try:
            response = await self._get_following_redirects(stack, URL(location), timeout_s)
            if response.status != 200:
                raise _bad_answer(f"Remote media location answered {response.status}")
            if response.content_length is not None and response.content_length > max_size:
                raise remote_too_large()
        except aiohttp.ClientConnectorError as exc:
            await stack.aclose()
            raise _bad_answer(f"Cannot fetch remote media from its location: {exc}") from exc
        except (aiohttp.ClientError, OSError, ValueError, TimeoutError) as exc:
            await stack.aclose()
            raise _bad_answer("Fetching remote media from its location failed") from exc
        except BaseException:
            await stack.aclose()
            raise
        headers = response.headers
        content_type = headers.get("Content-Type") or part_headers.get("Content-Type")
        disposition = headers.get("Content-Disposition") or part_headers.get("Content-Disposition")
        return RemoteMedia(
            content_type, _filename(disposition), _stream(response.content.read, stack)
        )

    async def _get_following_redirects(
        self, stack: AsyncExitStack, url: URL, timeout_s: float
    ) -> aiohttp.ClientResponse:
        """An unsigned GET, redirects followed hop by hop, each target checked against
        the address policy (IP literals here, names by the session's resolver)."""
        async with asyncio.timeout(timeout_s):
            for _ in range(MAX_LOCATION_REDIRECTS + 1):
                self._check_location(url)
                response = await stack.enter_async_context(
                    self._client.session().get(url, allow_redirects=False)
                )
                target = response.headers.get("Location")
                if response.status not in _REDIRECT_STATUSES or not target:
                    return response
                await stack.aclose()
                url = url.join(URL(target))
        raise _bad_answer("Too many redirects from the remote media location")

    def _check_location(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise _bad_answer("Remote media location is not an http(s) URL")
        address = ip_literal(url.host)
        if address is not None and not self._client.addresses.allows(address):
            raise _bad_answer("Remote media location is a blocked address")
