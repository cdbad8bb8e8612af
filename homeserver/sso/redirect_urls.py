"""The client's ``redirectUrl`` of an SSO login: checking it, and adding the login token.

The login token is handed to whatever site ``redirectUrl`` names, so the URL must at
least be one a browser navigates to (not ``javascript:`` or ``data:``, which would run
in the homeserver's page), and the user confirms the site unless it is trusted
(``sso.client_whitelist``), as the spec's SSO security considerations ask.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from homeserver.errors import InvalidParam

MAX_REDIRECT_URL_LENGTH: Final = 2048
# Schemes whose "navigation" runs code or reads local data instead of opening a site.
_UNSAFE_SCHEMES: Final = frozenset({"javascript", "vbscript", "data", "file", "blob", "about"})
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
LOGIN_TOKEN_PARAM: Final = "loginToken"


def check_client_redirect_url(url: str) -> str:
    """``url`` if a login token may be sent to it; M_INVALID_PARAM otherwise.

    Apps register their own schemes (``element://``, ``com.example.app:/``), so any
    scheme is accepted except those that do not name a site."""
    if not url or len(url) > MAX_REDIRECT_URL_LENGTH:
        raise InvalidParam(f"redirectUrl must be 1 to {MAX_REDIRECT_URL_LENGTH} characters")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise InvalidParam("redirectUrl must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidParam("redirectUrl is not a URL") from None
    if not _SCHEME.fullmatch(parts.scheme):
        raise InvalidParam("redirectUrl must be an absolute URL")
    if parts.scheme.lower() in _UNSAFE_SCHEMES:
        raise InvalidParam(f"redirectUrl must not be a {parts.scheme}: URL")
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        raise InvalidParam("redirectUrl must name a host")
    return url


def with_login_token(url: str, login_token: str) -> str:
    """``url`` with ``loginToken=<login_token>`` added to its query (any
    ``loginToken`` already there removed first, as the spec says); the rest of the
    query is kept as the client wrote it, and the fragment too."""
    parts = urlsplit(url)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) != LOGIN_TOKEN_PARAM
    ]
    kept.append(urlencode({LOGIN_TOKEN_PARAM: login_token}))
    return urlunsplit(parts._replace(query="&".join(kept)))


def display_url(url: str) -> str:
    """What the confirmation page names the site by: the host of an https URL,
    otherwise the URL without its query (which carries the login token) or fragment."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "https" and parts.netloc:
        return parts.netloc
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def is_trusted_client(url: str, whitelist: Sequence[str]) -> bool:
    """Whether ``url`` is one of ``whitelist``, or continues one after a "/", "?" or
    "#" (a prefix ending in "/" matches anything below it)."""
    for entry in whitelist:
        if url == entry:
            return True
        if url.startswith(entry) and (entry.endswith("/") or url[len(entry)] in "/?#"):
            return True
    return False
