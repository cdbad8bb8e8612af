"""The outbound requests of OpenID Connect: discovery, JWKS, token and userinfo.

They go through the same address rules as push gateways and CAS
(``ip_range_blacklist`` / ``_whitelist``), follow no redirect, and read at most
1 MiB. Request bodies (which carry the client secret and the code) are never logged.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Mapping
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp

from homeserver.media.preview import AddressFilter, FilteringResolver

logger = logging.getLogger(__name__)

OIDC_TIMEOUT_S: Final = 30.0
MAX_OIDC_RESPONSE_BYTES: Final = 1024 * 1024


class OidcHttpError(Exception):
    """A request to the provider failed: ``status`` is the HTTP status of an answer
    (None when none came), ``body`` its JSON if it was JSON."""

    def __init__(self, message: str, status: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class OidcTransport(Protocol):
    async def request_json(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        """The JSON body of a 2xx answer; OidcHttpError otherwise."""
        ...

    async def close(self) -> None: ...


class OidcHttpClient:
    def __init__(self, addresses: AddressFilter, *, tls: ssl.SSLContext | bool = True) -> None:
        self._addresses = addresses
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        host = (urlsplit(url).hostname or "").strip("[]")
        if self._addresses.refuses_literal(host):
            logger.warning(
                "OIDC provider %s is refused by ip_range_blacklist (add it to ip_range_whitelist)",
                host,
            )
            raise OidcHttpError("the provider's address is not allowed")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=FilteringResolver(self._addresses), ssl=self._tls
                ),
                timeout=aiohttp.ClientTimeout(total=OIDC_TIMEOUT_S),
            )
        all_headers = {"Accept": "application/json", **(headers or {})}
        try:
            async with self._session.request(
                method, url, headers=all_headers, data=form, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(MAX_OIDC_RESPONSE_BYTES + 1)
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("OIDC request %s %s failed: %r", method, url, exc)
            raise OidcHttpError(f"cannot reach the provider ({type(exc).__name__})") from exc
        if len(raw) > MAX_OIDC_RESPONSE_BYTES:
            raise OidcHttpError("the provider's answer is too large", status)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status // 100 != 2:
            raise OidcHttpError(f"the provider answered {status}", status, body)
        if body is None:
            raise OidcHttpError("the provider's answer is not JSON", status)
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
