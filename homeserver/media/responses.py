"""HTTP responses that send stored media from disk.

``web.FileResponse`` streams the file (sendfile where it can) and answers HEAD,
``Range`` (206 with Content-Range, 416 when unsatisfiable), ``If-Range``,
``If-None-Match`` and ``If-Modified-Since`` (304). Its ETag is built from the file's
size and modification time; files are content-addressed and never rewritten, so
that is a strong validator of the bytes.
"""

from __future__ import annotations

from aiohttp import web

from homeserver.media.headers import content_disposition, media_headers
from homeserver.media.service import ServedMedia


def media_file_response(
    media: ServedMedia, *, filename: str | None = None, private: bool = True, inline: bool = False
) -> web.FileResponse:
    """The response for a download (or, with ``inline``, a thumbnail).

    ``filename`` overrides the uploaded name (the ``/{fileName}`` download variant).
    """
    name = filename if filename is not None else media.filename
    disposition = content_disposition(media.content_type, name)
    if inline and disposition.startswith("attachment"):
        disposition = "inline" + disposition[len("attachment") :]
    headers = media_headers(media.content_type, disposition, private=private)
    return web.FileResponse(media.path, headers=headers)
