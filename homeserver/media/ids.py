"""Media IDs and ``mxc://`` URIs (client-server API: Matrix Content URIs; security
considerations of the content repository)."""

from __future__ import annotations

import re
import secrets

from homeserver.errors import NotFound
from homeserver.events.identifiers import is_valid_server_name

# The spec allows only A-Za-z0-9, "_" and "-" in a media ID: no traversal is expressible.
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


def new_media_id() -> str:
    """A fresh unguessable media ID (144 bits, URL-safe base64: 24 characters)."""
    return secrets.token_urlsafe(18)


def mxc_uri(server_name: str, media_id: str) -> str:
    return f"mxc://{server_name}/{media_id}"


def check_media_location(server_name: str, media_id: str) -> None:
    """Refuse a server name or media ID outside the spec's grammar: no such media can exist."""
    if not _MEDIA_ID.fullmatch(media_id) or not is_valid_server_name(server_name):
        raise NotFound("Unknown media")
