"""Query parameters shared by the paginated admin lists."""

from __future__ import annotations

from aiohttp import web

from homeserver.errors import InvalidParam


def direction_of(request: web.Request, default: str) -> str:
    """The ``dir`` query parameter: ``f`` (forwards) or ``b`` (backwards)."""
    direction = request.query.get("dir", default)
    if direction not in ("f", "b"):
        raise InvalidParam("Query parameter 'dir' must be one of ['b', 'f']")
    return direction
