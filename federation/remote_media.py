"""Fetching media of other servers (s2s "Content Repository").

``GET /_matrix/federation/v1/media/download/{mediaId}`` answers ``multipart/mixed``:
a JSON metadata part, then the media itself (or a ``Location`` to fetch it from,
which this server does not follow: it answers 502, as for any unusable answer).
The media part is streamed to the media service, which enforces the size limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from email.message import Message
from urllib.parse import quote

import aiohttp
from aiohttp import BodyPartReader, MultipartReader

from federation.client import FederationClient
from federation.errors import FederationError
from homeserver.errors import MatrixError, NotFound
from homeserver.media.remote import RemoteMedia

CHUNK_SIZE = 64 * 1024


def _filename(disposition: str | None) -> str | None:
    if not disposition:
        return None
    message = Message()
    message["content-disposition"] = disposition
    name = message.get_filename()
    return name if isinstance(name, str) else None


class FederationMediaFetcher:
    """The media service's ``RemoteMediaFetcher`` over federation."""

    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def fetch_media(
        self, server_name: str, media_id: str, *, max_size: int, timeout_ms: int
    ) -> RemoteMedia:
        path = f"/_matrix/federation/v1/media/download/{quote(media_id, safe='')}"
        stack = AsyncExitStack()
        try:
            response = await stack.enter_async_context(
                self._client.open_stream(server_name, path, timeout_s=max(1.0, timeout_ms / 1000))
            )
            reader = MultipartReader.from_response(response)
            metadata = await reader.next()
            if not isinstance(metadata, BodyPartReader):
                raise MatrixError(502, "M_UNKNOWN", "Remote media answer has no metadata part")
            await metadata.read()
            media = await reader.next()
            if not isinstance(media, BodyPartReader) or "Location" in media.headers:
                raise MatrixError(502, "M_UNKNOWN", "Remote media answer has no content part")
        except FederationError as exc:
            await stack.aclose()
            if exc.status == 404:
                raise NotFound("Remote media not found") from exc
            if exc.errcode == "M_NOT_YET_UPLOADED":
                raise MatrixError(
                    504, "M_NOT_YET_UPLOADED", "Remote media not yet uploaded"
                ) from exc
            raise MatrixError(502, "M_UNKNOWN", f"Could not fetch remote media: {exc}") from exc
        except (aiohttp.ClientError, ValueError, AssertionError) as exc:
            await stack.aclose()
            raise MatrixError(
                502, "M_UNKNOWN", "Remote media answer is not valid multipart"
            ) from exc
        except BaseException:
            await stack.aclose()
            raise

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await media.read_chunk(CHUNK_SIZE):
                    yield chunk
            finally:
                await stack.aclose()

        return RemoteMedia(
            media.headers.get("Content-Type"),
            _filename(media.headers.get("Content-Disposition")),
            chunks(),
        )
