"""One way to read and check request bodies and parameters, for every endpoint.

``await json_object(request)`` gives the body as a dict or raises M_NOT_JSON /
M_BAD_JSON; the ``get_*`` functions pull one typed field out of a dict, raising
M_BAD_JSON (wrong type) or M_MISSING_PARAM (absent but required) naming the key.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web

from homeserver.errors import BadJson, InvalidParam, MissingParam, NotJson, TooLarge
from homeserver.events.json_codec import loads

T = TypeVar("T")
_MISSING: Any = object()


async def json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise TooLarge() from exc
    if not raw.strip():
        if allow_empty:
            return {}
        raise NotJson("Content not JSON.")
    try:
        value = loads(raw, strict=True)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested too deep
        raise NotJson("Content not JSON.") from exc
    if not isinstance(value, dict):
        raise BadJson("Body must be a JSON object")
    return value


def _typed(body: dict[str, Any], key: str, kinds: tuple[type, ...], what: str, default: Any) -> Any:
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise MissingParam(f"Missing parameter: {key}")
        return default
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadJson(f"'{key}' must be {what}")
    return value


def get_str(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    return _typed(body, key, (str,), "a string", default)


def get_bool(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    return _typed(body, key, (bool,), "a boolean", default)


def get_int(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    return _typed(body, key, (int,), "an integer", default)


def get_dict(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    return _typed(body, key, (dict,), "an object", default)


def get_list(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    return _typed(body, key, (list,), "an array", default)


def get_str_list(body: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    value = get_list(body, key, default)
    if value is not default and not all(isinstance(v, str) for v in value):
        raise BadJson(f"'{key}' must be an array of strings")
    return value


# The largest integer a query parameter may carry: what the database stores (BIGINT)
# and canonical JSON allows (2**53 - 1 is JSON's; a timestamp or position is far below).
MAX_QUERY_INT = 2**63 - 1


def query_int(
    request: web.Request, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """An integer query parameter, clamped to ``maximum``; M_INVALID_PARAM if not an
    integer, below ``minimum``, or (without a ``maximum``) beyond a 64-bit integer."""
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidParam(f"Query parameter '{key}' must be an integer") from exc
    if value < minimum:
        raise InvalidParam(f"Query parameter '{key}' must be at least {minimum}")
    if maximum is not None:
        value = min(value, maximum)
    elif value > MAX_QUERY_INT:
        raise InvalidParam(f"Query parameter '{key}' is too large")
    return value


def query_bool(request: web.Request, key: str, default: bool) -> bool:
    raw = request.query.get(key)
    if raw is None:
        return default
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise InvalidParam(f"Query parameter '{key}' must be true or false")
