"""What the media service needs from federation to fetch media of other servers.

``federation.remote_media.FederationMediaFetcher`` implements it: the remote server's
``GET /_matrix/federation/v1/media/download/{mediaId}`` (following a ``Location``
answer), falling back to the deprecated ``/_matrix/media/v3/download`` with
``allow_remote=false`` on ``404 M_UNRECOGNIZED``, as the server-server API's Content
Repository section says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from homeserver.errors import MatrixError


def remote_too_large() -> MatrixError:
    """Remote content longer than the server serves (max_upload_size)."""
    return MatrixError(502, "M_TOO_LARGE", "Remote content is too large to serve")


@dataclass
class RemoteMedia:
    """Remote content as it arrives: its type, its file name, and its bytes as a stream."""

    content_type: str | None
    filename: str | None
    chunks: AsyncIterator[bytes]


class RemoteMediaFetcher(Protocol):
    async def fetch_media(
        self, server_name: str, media_id: str, *, max_size: int, timeout_ms: int
    ) -> RemoteMedia:
        """Start downloading ``mxc://{server_name}/{media_id}``.

        Raises `NotFound` when the remote server has no such media, `MatrixError(504,
        "M_NOT_YET_UPLOADED")` when it is not uploaded yet, and `MatrixError(502, ...)`
        when the remote server cannot be reached. The stream may be longer than
        ``max_size``: the media service stops reading it there.
        """
        ...
