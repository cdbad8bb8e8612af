"""CAS (Central Authentication Service) as a single sign-on identity provider.

The browser is sent to ``<server_url>/login?service=<service URL>``; the CAS server
sends it back to the service URL (``.../login/cas/ticket?redirectUrl=...`` for a
login, ``?session=...`` for user-interactive auth) with a ``ticket``, which this
server validates at ``<server_url>/proxyValidate`` (``/p3/proxyValidate`` for
protocol version 3) with the same service URL. The answer is CAS's XML:
``cas:serviceResponse`` holding ``cas:authenticationSuccess`` (``cas:user`` and
``cas:attributes``) or ``cas:authenticationFailure``.

`parse_cas_response` is pure; `CasHttpClient` does the one outbound request, through
the same address rules as push gateways (``ip_range_blacklist`` / ``_whitelist``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp

from homeserver.config import CasConfig
from homeserver.media.preview import AddressFilter, FilteringResolver

logger = logging.getLogger(__name__)

CAS_IDP_ID: Final = "cas"
# the service URL path, under r0 as Synapse (and so the CAS server's registration) has it
CAS_TICKET_PATH: Final = "_matrix/client/r0/login/cas/ticket"
CAS_TIMEOUT_S: Final = 30.0
MAX_CAS_RESPONSE_BYTES: Final = 1024 * 1024


class CasError(Exception):
    """The ticket could not be validated: ``error`` is a short code, ``description``
    what the user is shown."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class CasResponse:
    """A successful validation: the CAS user name and its attributes (each attribute
    may come several times)."""

    username: str
    attributes: Mapping[str, list[str | None]] = field(default_factory=dict)


def _local_name(tag: str) -> str:
    """An element's name without its namespace (``{http://...}user`` -> ``user``)."""
    return tag.rsplit("}", 1)[-1]


def parse_cas_response(body: bytes) -> CasResponse:
    """The user and attributes of a CAS validation answer; CasError if it is not a
    well-formed ``authenticationSuccess``. Documents with a DTD are refused (CAS
    answers have none; entity tricks stay out)."""
    head = body[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in body.lower():
        raise CasError("invalid_response", "The CAS server's answer is not a CAS response")
    from xml.etree import ElementTree  # loaded by the first CAS login

    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise CasError("invalid_response", "The CAS server's answer is not valid XML") from None
    if _local_name(root.tag) != "serviceResponse":
        raise CasError("missing_service_response", "The CAS answer is not a serviceResponse")
    if len(root) == 0 or _local_name(root[0].tag) != "authenticationSuccess":
        failure = root[0] if len(root) else None
        code = failure.get("code") if failure is not None else None
        detail = f" ({code})" if code else ""
        raise CasError("unsuccessful_response", f"The CAS server refused the ticket{detail}")
    user: str | None = None
    attributes: dict[str, list[str | None]] = {}
    for child in root[0]:
        name = _local_name(child.tag)
        if name == "user":
            user = (child.text or "").strip() or None
        elif name == "attributes":
            for attribute in child:
                attributes.setdefault(_local_name(attribute.tag), []).append(attribute.text)
    if user is None:
        raise CasError("no_user", "The CAS answer names no user")
    return CasResponse(user, attributes)


def meets_requirements(
    attributes: Mapping[str, list[str | None]], required: Mapping[str, str | None]
) -> bool:
    """Whether every required attribute is present (with the required value, if one
    is given, among its values)."""
    for name, wanted in required.items():
        if name not in attributes:
            return False
        if wanted is not None and wanted not in attributes[name]:
            return False
    return True


class CasTransport(Protocol):
    async def get(self, url: str, params: Mapping[str, str]) -> bytes:
        """GET ``url`` with ``params``; the body of a 2xx answer, else CasError."""
        ...

    async def close(self) -> None: ...


class CasHttpClient:
    """GETs from the CAS server, reaching only addresses the outbound rules allow,
    following no redirect, reading at most 1 MiB."""

    def __init__(self, addresses: AddressFilter, *, tls: ssl.SSLContext | bool = True) -> None:
        self._addresses = addresses
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str, params: Mapping[str, str]) -> bytes:
        host = (urlsplit(url).hostname or "").strip("[]")
        if self._addresses.refuses_literal(host):
            logger.warning(
                "CAS server %s is refused by ip_range_blacklist (add it to ip_range_whitelist)",
                host,
            )
            raise CasError("server_error", "The CAS server cannot be reached")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=FilteringResolver(self._addresses), ssl=self._tls
                ),
                timeout=aiohttp.ClientTimeout(total=CAS_TIMEOUT_S),
            )
        try:
            async with self._session.get(url, params=params, allow_redirects=False) as resp:
                if resp.status // 100 != 2:
                    raise CasError(
                        "server_error", f"The CAS server answered with an error ({resp.status})"
                    )
                body = await resp.content.read(MAX_CAS_RESPONSE_BYTES + 1)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("CAS ticket validation at %s failed: %r", url, exc)
            raise CasError("server_error", "The CAS server cannot be reached") from exc
        if len(body) > MAX_CAS_RESPONSE_BYTES:
            raise CasError("invalid_response", "The CAS server's answer is too large")
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class CasProvider:
    """The CAS identity provider of ``cas_config``."""

    idp_id: Final = CAS_IDP_ID

    def __init__(self, config: CasConfig, public_baseurl: str, transport: CasTransport) -> None:
        self.config = config
        self._service_base = public_baseurl + CAS_TICKET_PATH
        self._transport = transport

    @property
    def idp_name(self) -> str:
        return self.config.idp_name

    @property
    def idp_icon(self) -> str | None:
        return self.config.idp_icon

    @property
    def idp_brand(self) -> str | None:
        return self.config.idp_brand

    def service_url(self, args: Mapping[str, str]) -> str:
        """Where CAS sends the browser back: the ticket endpoint with ``args``."""
        return f"{self._service_base}?{urlencode(args)}"

    def redirect_url(self, args: Mapping[str, str]) -> str:
        """The CAS login page, to come back to the service URL of ``args``."""
        return f"{self.config.server_url}/login?{urlencode({'service': self.service_url(args)})}"

    async def validate_ticket(self, ticket: str, args: Mapping[str, str]) -> CasResponse:
        """Ask the CAS server whether ``ticket`` was issued for the service URL of
        ``args`` (the same URL the browser was sent back to)."""
        path = "/p3/proxyValidate" if self.config.protocol_version == 3 else "/proxyValidate"
        body = await self._transport.get(
            self.config.server_url + path, {"ticket": ticket, "service": self.service_url(args)}
        )
        response = parse_cas_response(body)
        username = response.username
        if self.config.allow_numeric_ids and username.isdigit():
            username = self.config.numeric_ids_prefix + username
            response = CasResponse(username, response.attributes)
        return response

    async def close(self) -> None:
        await self._transport.close()

    def display_name(self, response: CasResponse) -> str | None:
        """A new user's display name: the first value of ``displayname_attribute``."""
        name = self.config.displayname_attribute
        if name is None:
            return None
        values = response.attributes.get(name) or [None]
        return values[0] or None
