"""URL previews (client-server API: Content repository, getUrlPreviewAuthed).

Off unless ``url_preview_enabled``. A preview fetches a page the user names, so the
fetch must not become a way into the server's own network: every address a host
resolves to is checked against ``url_preview_ip_range_blacklist`` (or, when that is not
set, ``ip_range_blacklist``) unless a whitelist allows it, by the resolver the connection itself uses, on every redirect hop. Pages
are read up to a size cap; the OpenGraph ``og:title``, ``og:description`` and
``og:image`` (downloaded and stored as local media) are returned.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from homeserver.config import HomeserverConfig
from homeserver.errors import Forbidden, InvalidParam, MatrixError
from homeserver.http.outbound_tls import client_tls
from homeserver.media.headers import base_content_type
from homeserver.media.service import MediaService
from homeserver.media.thumbnailer import image_dimensions

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_PAGE_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
FETCH_TIMEOUT_S = 10.0
CACHE_ENTRIES = 1000
CACHE_MS = 3600 * 1000


class BlockedAddress(OSError):
    """Every address of a host is in the blacklist."""


class AddressFilter:
    """Which IP addresses outbound requests may reach."""

    def __init__(self, blacklist: Sequence[IPNetwork], whitelist: Sequence[IPNetwork]) -> None:
        self._blacklist = tuple(blacklist)
        self._whitelist = tuple(whitelist)

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self._whitelist):
            return True
        return not any(ip in net for net in self._blacklist)

    def refuses_literal(self, host: str) -> bool:
        """Whether ``host`` (of a URL, brackets allowed) is an IP address this filter
        refuses. aiohttp connects to an IP literal without the resolver, so callers
        check those themselves; a name is checked by the FilteringResolver."""
        address = host.strip("[]")
        try:
            ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return not self.allows(address)


class FilteringResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, dropping every blocked address."""

    def __init__(self, addresses: AddressFilter) -> None:
        self._addresses = addresses
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._addresses.allows(r["host"])]
        if not allowed:
            raise BlockedAddress(f"{host} resolves only to blocked addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class UrlPreviewer:
    def __init__(
        self, media: MediaService, addresses: AddressFilter, *, tls: ssl.SSLContext | bool = True
    ) -> None:
        self._media = media
        self._addresses = addresses
        self._tls = tls
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    async def preview(self, url: str, user_id: str) -> dict[str, Any]:
        cached = self._cache.get(url)
        if cached is not None and (time.monotonic() - cached[0]) * 1000 < CACHE_MS:
            return cached[1]
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                resolver=FilteringResolver(self._addresses), ssl=self._tls
            ),
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S),
        ) as session:
            final_url, content_type, body = await self._fetch(session, url, MAX_PAGE_BYTES)
            result: dict[str, Any] = {}
            if base_content_type(content_type) in ("text/html", "application/xhtml+xml"):
                # (the HTML parser is loaded by the first page previewed)
                from homeserver.media.opengraph import parse_open_graph

                result.update(parse_open_graph(body.decode(_charset(content_type), "replace")))
                image = result.pop("og:image", None)
                if image:
                    result.update(
                        await self._store_image(session, final_url.join(URL(image)), user_id)
                    )
        self._cache[url] = (time.monotonic(), result)
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return result

    async def _store_image(
        self, session: aiohttp.ClientSession, url: URL, user_id: str
    ) -> dict[str, Any]:
        try:
            _, content_type, data = await self._fetch(
                session, str(url), self._media.limits.max_upload_size
            )
        except MatrixError:
            return {}
        if not base_content_type(content_type).startswith("image/"):
            return {}

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        mxc = await self._media.upload(
            user_id, chunks(), content_type=content_type, filename=url.name or None
        )
        result: dict[str, Any] = {
            "og:image": mxc,
            "og:image:type": content_type,
            "matrix:image:size": len(data),
        }
        dimensions = image_dimensions(data)
        if dimensions is not None:
            result["og:image:width"], result["og:image:height"] = dimensions
        return result

    async def _fetch(
        self, session: aiohttp.ClientSession, url: str, max_bytes: int
    ) -> tuple[URL, str | None, bytes]:
        target = URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            self._check_url(target)
            try:
                async with session.get(target, allow_redirects=False) as response:
                    if (
                        response.status in (301, 302, 303, 307, 308)
                        and "Location" in response.headers
                    ):
                        target = target.join(URL(response.headers["Location"]))
                        continue
                    if response.status != 200:
                        raise MatrixError(502, "M_UNKNOWN", f"URL answered {response.status}")
                    body = await _read_capped(response, max_bytes)
                    return target, response.headers.get("Content-Type"), body
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress) or isinstance(
                    exc.__cause__, BlockedAddress
                ):
                    raise Forbidden("URL resolves to a blocked IP address") from exc
                raise MatrixError(502, "M_UNKNOWN", "Could not fetch the URL") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise MatrixError(502, "M_UNKNOWN", "Could not fetch the URL") from exc
        raise MatrixError(502, "M_UNKNOWN", "Too many redirects")

    def _check_url(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidParam("Only http and https URLs can be previewed")
        try:
            ipaddress.ip_address(url.host)
        except ValueError:
            return  # a host name: the resolver checks every address it resolves to
        if not self._addresses.allows(url.host):
            raise Forbidden("URL resolves to a blocked IP address")


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    data = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > max_bytes:
            raise MatrixError(502, "M_TOO_LARGE", "The page is too large to preview")
    return bytes(data)


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
            except LookupError:
                break
            return value.strip('"')
    return "utf-8"


def url_previewer_from_config(config: HomeserverConfig, media: MediaService) -> UrlPreviewer | None:
    """The URL previewer, or None when ``url_preview_enabled`` is off."""
    if not config.url_preview_enabled:
        return None
    if config.url_preview_ip_range_blacklist is not None:
        addresses = AddressFilter(
            config.url_preview_ip_range_blacklist, config.url_preview_ip_range_whitelist
        )
    else:
        addresses = AddressFilter(
            config.ip_range_blacklist,
            config.url_preview_ip_range_whitelist + config.ip_range_whitelist,
        )
    return UrlPreviewer(media, addresses, tls=client_tls(config))
