"""The X-Matrix ``Authorization`` header: signing outgoing requests, parsing incoming ones.

Spec: server-server API "Request Authentication". The method, target URI, origin,
destination and (for requests with a body) the JSON content are wrapped in one JSON
object, signed with the origin's key by the JSON signing algorithm, and the signature
travels in ``Authorization: X-Matrix origin="...",destination="...",key="...",sig="..."``.

Pure: no IO. The receiving side (``federation.auth``) fetches the origin's key and
checks the signature with :func:`request_object`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.events.signing import SigningKey, key_id_of, sign_json

SCHEME = "X-Matrix"


@dataclass(frozen=True, slots=True)
class XMatrixCredentials:
    """The parameters of one X-Matrix header. ``destination`` is None when the sender
    (an old server) did not include it."""

    origin: str
    key: str
    sig: str
    destination: str | None = None


def request_object(
    method: str, uri: str, origin: str, destination: str, content: Any = None
) -> dict[str, Any]:
    """The JSON object that is signed for a request (step 1 of Request Authentication).

    ``uri`` is the request target from ``/_matrix/...`` including any query string;
    ``content`` is the parsed JSON body, or None for a request without one.
    """
    obj: dict[str, Any] = {
        "method": method.upper(),
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def sign_request(
    origin: str,
    signing_key: SigningKey,
    destination: str,
    method: str,
    uri: str,
    content: Any = None,
) -> str:
    """The ``Authorization`` header value for a request from ``origin`` (step 2).

    Written the way the spec asks senders to for older servers: one space after the
    scheme, lower-case names, every value quoted, no whitespace around commas.
    """
    signed = sign_json(
        request_object(method, uri, origin, destination, content), origin, signing_key
    )
    key_id = key_id_of(signing_key)
    sig = signed["signatures"][origin][key_id]
    return (
        f'{SCHEME} origin="{_quote(origin)}",destination="{_quote(destination)}",'
        f'key="{_quote(key_id)}",sig="{_quote(sig)}"'
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_x_matrix(header: str) -> XMatrixCredentials:
    """Parse one ``Authorization`` header value with the X-Matrix scheme.

    The rules of the spec (after RFC 9110 section 11.4): the scheme, one or more
    spaces, then comma-separated ``name=value`` parameters with optional spaces and
    tabs around the commas; names are case-insensitive; values are tokens or quoted
    strings with backslash escapes; unquoted values may contain colons (for older
    servers); unknown parameters are ignored. Raises ``ValueError``.
    """
    scheme, sep, rest = header.partition(" ")
    if scheme.lower() != SCHEME.lower() or not sep:
        raise ValueError("not an X-Matrix authorization header")
    params = _parse_params(rest)
    missing = [name for name in ("origin", "key", "sig") if not params.get(name)]
    if missing:
        raise ValueError(f"X-Matrix header lacks {', '.join(missing)}")
    destination = params.get("destination")
    return XMatrixCredentials(
        origin=params["origin"],
        key=params["key"],
        sig=params["sig"],
        destination=destination if destination else None,
    )


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            return params
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError("X-Matrix parameter without a value")
        name = text[i:eq].strip(" \t").lower()
        if not name or any(c in name for c in ' \t,"'):
            raise ValueError("bad X-Matrix parameter name")
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            value, i = _quoted_string(text, i + 1)
        else:
            start = i
            while i < n and text[i] not in ", \t":
                i += 1
            value = text[start:i]
            if '"' in value or "\\" in value:
                raise ValueError("bad unquoted X-Matrix parameter value")
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise ValueError("X-Matrix parameters must be separated by commas")
        params.setdefault(name, value)


def _quoted_string(text: str, i: int) -> tuple[str, int]:
    """The unescaped content of a quoted string starting after its opening quote, and
    the index after its closing quote."""
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise ValueError("unterminated quoted value in X-Matrix header")


def authorization_headers(headers: Mapping[str, str] | Any) -> list[str]:
    """Every ``Authorization`` header value using the X-Matrix scheme (a request may
    carry one per signing key)."""
    values = headers.getall("Authorization", []) if hasattr(headers, "getall") else []
    return [v for v in values if v.split(" ", 1)[0].lower() == SCHEME.lower()]
