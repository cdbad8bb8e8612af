"""Outbound federation requests: discovery, X-Matrix signing, TLS, address policy.

Spec: server-server API "API standards", "TLS", "Server discovery", "Request
Authentication". Every request:

* is refused before sending when ``federation_domain_whitelist`` is set and does not
  name the destination (:class:`FederationDenied`);
* goes where :class:`ServerResolver` says, with the ``Host`` header and TLS name
  (SNI, certificate check) of the discovery step that decided;
* connects only to addresses allowed by ``ip_range_blacklist`` /
  ``federation_ip_range_whitelist`` / ``ip_range_whitelist``: IP-literal targets are
  checked here, names by the connection's own resolver (so also on redirects);
* is signed with an X-Matrix ``Authorization`` header over the request object;
* verifies certificates (against ``federation_custom_ca_list`` if set) unless
  ``federation_verify_certificates`` is false (see `homeserver.http.outbound_tls`);
* has a total timeout and a response size cap; the answer is parsed defensively and
  every failure becomes a :class:`FederationError` (with the remote errcode if any).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from federation.discovery import (
    WELL_KNOWN_MAX_BYTES,
    DnsPythonResolver,
    DnsResolver,
    HttpAnswer,
    ResolvedServer,
    ServerResolver,
    ip_literal,
)
from federation.errors import FederationDenied, FederationError
from federation.xmatrix import sign_request
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.events import json_codec
from homeserver.events.signing import SigningKey
from homeserver.http.outbound_tls import SYSTEM_AUTHORITIES, federation_tls
from homeserver.media.preview import AddressFilter, FilteringResolver

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 15.0
WELL_KNOWN_TIMEOUT_S = 10.0
WELL_KNOWN_MAX_REDIRECTS = 5
DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024
USER_AGENT = "homeserver/0.1 (federation)"

Query = Mapping[str, str | int | Sequence[str]] | None


@dataclass(frozen=True)
class FederationClientSettings:
    """What the client needs from the configuration."""

    verify_certificates: bool = True
    # a context with the authorities to trust; None: the system's
    tls_context: ssl.SSLContext | None = None
    domain_whitelist: frozenset[str] | None = None
    addresses: AddressFilter | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    @classmethod
    def from_config(cls, config: HomeserverConfig) -> FederationClientSettings:
        whitelist = config.federation_domain_whitelist
        tls = federation_tls(config)
        if config.federation_ip_range_blacklist is not None:
            # Synapse's legacy option: only it, with no whitelist
            addresses = AddressFilter(config.federation_ip_range_blacklist, ())
        else:
            addresses = AddressFilter(
                config.ip_range_blacklist,
                tuple(config.federation_ip_range_whitelist) + tuple(config.ip_range_whitelist),
            )
        return cls(
            verify_certificates=tls is not False,
            tls_context=tls if isinstance(tls, ssl.SSLContext) else None,
            domain_whitelist=None if whitelist is None else frozenset(whitelist),
            addresses=addresses,
        )


def federation_allowed(server_name: str, whitelist: frozenset[str] | None) -> bool:
    """Whether ``federation_domain_whitelist`` lets us talk to ``server_name``."""
    return whitelist is None or server_name in whitelist


class FederationClient:
    """Signed JSON requests to other homeservers over HTTPS."""

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        settings: FederationClientSettings,
        clock: Clock,
        *,
        dns: DnsResolver | None = None,
        resolver: ServerResolver | None = None,
    ) -> None:
        self.server_name = server_name
        self._signing_key = signing_key
        self._settings = settings
        self._addresses = settings.addresses or AddressFilter((), ())
        self._session: aiohttp.ClientSession | None = None
        self.resolver = resolver or ServerResolver(
            dns or DnsPythonResolver(), _SessionWellKnownFetcher(self), clock
        )

    @property
    def addresses(self) -> AddressFilter:
        """The outbound address policy (also for the unsigned fetches federation
        answers lead to, such as a remote media ``Location``)."""
        return self._addresses

    # -- the session -------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """The shared HTTP session (made on first use, inside the event loop)."""
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = False
            if self._settings.verify_certificates:
                tls = self._settings.tls_context or SYSTEM_AUTHORITIES
            connector = aiohttp.TCPConnector(
                resolver=FilteringResolver(self._addresses), ssl=tls, limit_per_host=20
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- JSON requests -----------------------------------------------------------------

    async def get_json(
        self,
        destination: str,
        path: str,
        query: Query = None,
        *,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
    ) -> Any:
        """``GET`` a JSON answer (``path`` already percent-encoded, from ``/_matrix``)."""
        return await self.request_json(
            "GET", destination, path, query, timeout_s=timeout_s, max_bytes=max_bytes
        )

    async def put_json(
        self,
        destination: str,
        path: str,
        body: Any,
        query: Query = None,
        *,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
    ) -> Any:
        return await self.request_json(
            "PUT", destination, path, query, body, timeout_s=timeout_s, max_bytes=max_bytes
        )

    async def post_json(
        self,
        destination: str,
        path: str,
        body: Any,
        query: Query = None,
        *,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
    ) -> Any:
        return await self.request_json(
            "POST", destination, path, query, body, timeout_s=timeout_s, max_bytes=max_bytes
        )

    async def request_json(
        self,
        method: str,
        destination: str,
        path: str,
        query: Query = None,
        body: Any = None,
        *,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
    ) -> Any:
        """Send a signed request and return the parsed JSON of a 2xx answer.

        Raises :class:`FederationError` for anything else: no answer, a non-2xx answer
        (with the remote errcode), a body over ``max_bytes`` or not JSON.
        """
        limit = max_bytes or self._settings.max_response_bytes
        try:
            async with asyncio.timeout(timeout_s or self._settings.timeout_s):
                async with self._send(method, destination, path, query, body) as response:
                    raw = await _read_capped(response, limit, destination)
                    return _json_answer(destination, response.status, raw)
        except TimeoutError:
            raise FederationError(destination, "request timed out") from None

    @asynccontextmanager
    async def open_stream(
        self,
        destination: str,
        path: str,
        query: Query = None,
        *,
        timeout_s: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A signed ``GET`` whose 200 answer is handed over unread (for media): read
        ``response.content`` inside the block. A non-200 answer raises
        :class:`FederationError`. The timeout covers the connection and the headers."""
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(timeout_s or self._settings.timeout_s):
                    response = await stack.enter_async_context(
                        self._send("GET", destination, path, query, None)
                    )
                    if response.status != 200:
                        raw = await _read_capped(response, 64 * 1024, destination)
                        _json_answer(destination, response.status, raw)
                        raise FederationError(
                            destination, f"HTTP {response.status}", status=response.status
                        )
            except TimeoutError:
                raise FederationError(destination, "request timed out") from None
            yield response

    # -- sending -----------------------------------------------------------------------

    def _check_allowed(self, destination: str) -> None:
        if destination != self.server_name and not federation_allowed(
            destination, self._settings.domain_whitelist
        ):
            raise FederationDenied(destination, "not in federation_domain_whitelist")

    @asynccontextmanager
    async def _send(
        self, method: str, destination: str, path: str, query: Query, body: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        self._check_allowed(destination)
        try:
            resolved = await self.resolver.resolve(destination)
        except ValueError as exc:
            raise FederationDenied(destination, f"invalid server name: {exc}") from None
        query_string = urlencode(query, doseq=True) if query else ""
        uri = f"{path}?{query_string}" if query_string else path
        headers = {
            "Host": resolved.host_header,
            "Authorization": sign_request(
                self.server_name, self._signing_key, destination, method, uri, body
            ),
        }
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        last_error: FederationError | None = None
        for host, port in resolved.targets:
            url = _url(host, port, path, query_string)
            if ip_literal(host) is not None and not self._addresses.allows(host):
                last_error = FederationDenied(destination, f"{host} is a blacklisted address")
                continue
            logger.debug("federation %s %s via %s (step %s)", method, uri, url, resolved.step)
            try:
                response = await self.session().request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    allow_redirects=False,
                    server_hostname=_sni(resolved, host),
                )
            except aiohttp.ClientConnectorError as exc:
                last_error = _connect_error(destination, exc)
                continue
            except (aiohttp.ClientError, OSError) as exc:
                raise FederationError(destination, f"request failed: {exc}") from None
            try:
                yield response
            except (aiohttp.ClientError, OSError) as exc:
                raise FederationError(destination, f"reading the answer failed: {exc}") from None
            finally:
                response.release()
            return
        raise last_error or FederationError(destination, "no address to connect to")

    # -- well-known --------------------------------------------------------------------

    async def fetch_well_known(self, hostname: str) -> HttpAnswer:
        """``GET https://<hostname>/.well-known/matrix/server`` (unsigned).

        Redirects are followed here, hop by hop, so that each target is checked
        against the address policy (names by the filtering resolver, IP literals
        here) and loops are cut (a URL seen before, or more than
        ``WELL_KNOWN_MAX_REDIRECTS`` hops). Raises on failure.
        """
        url = URL.build(scheme="https", host=hostname, path="/.well-known/matrix/server")
        return await self.fetch_well_known_url(url, hostname)

    async def fetch_well_known_url(self, url: URL, hostname: str) -> HttpAnswer:
        """:meth:`fetch_well_known` from a given first URL (tests use other ports)."""
        seen = {url}
        async with asyncio.timeout(WELL_KNOWN_TIMEOUT_S):
            for _ in range(WELL_KNOWN_MAX_REDIRECTS + 1):
                host = url.host or ""
                if url.scheme != "https" or (
                    ip_literal(host) is not None and not self._addresses.allows(host)
                ):
                    raise FederationDenied(hostname, f"well-known redirect to {url} refused")
                async with self.session().get(url, allow_redirects=False) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in (301, 302, 303, 307, 308) and location:
                        url = url.join(URL(location))
                        if url in seen:
                            raise FederationError(hostname, "well-known redirect loop")
                        seen.add(url)
                        continue
                    body = await _read_capped(resp, WELL_KNOWN_MAX_BYTES + 1, hostname)
                    return HttpAnswer(resp.status, dict(resp.headers), body)
        raise FederationError(hostname, "too many well-known redirects")


class _SessionWellKnownFetcher:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def fetch_well_known(self, hostname: str) -> HttpAnswer:
        return await self._client.fetch_well_known(hostname)


def _url(host: str, port: int, path: str, query_string: str) -> URL:
    netloc_host = f"[{host}]" if ":" in host else host
    return URL.build(
        scheme="https",
        host=netloc_host,
        port=port,
        path=path,
        query_string=query_string,
        encoded=True,
    )


def _sni(resolved: ResolvedServer, host: str) -> str | None:
    """The TLS name to send and check when it differs from the connected host (SRV);
    none for IP certificates (SNI cannot carry an IP address)."""
    if ip_literal(resolved.tls_name) is not None or resolved.tls_name == host:
        return None
    return resolved.tls_name


def _connect_error(destination: str, exc: aiohttp.ClientConnectorError) -> FederationError:
    cause = exc.os_error
    if type(cause).__name__ == "BlockedAddress":
        return FederationDenied(destination, str(cause))
    return FederationError(destination, f"cannot connect: {exc}")


async def _read_capped(response: aiohttp.ClientResponse, limit: int, destination: str) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise FederationError(destination, "answer too large", status=response.status)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise FederationError(destination, "answer too large", status=response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_answer(destination: str, status: int, raw: bytes) -> Any:
    try:
        body = json_codec.loads(raw, strict=True) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        body = None
        if 200 <= status < 300:
            raise FederationError(destination, "answer is not JSON", status=status) from None
    if 200 <= status < 300:
        if body is None:
            raise FederationError(destination, "empty answer", status=status)
        return body
    errcode = error = None
    if isinstance(body, dict):
        errcode = body.get("errcode") if isinstance(body.get("errcode"), str) else None
        error = body.get("error") if isinstance(body.get("error"), str) else None
    raise FederationError(
        destination,
        error or f"HTTP {status}",
        status=status,
        errcode=errcode,
        body=body,
    )
