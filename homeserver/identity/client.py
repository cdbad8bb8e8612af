"""An HTTP client of identity servers (Identity Service API v2).

The identity server a request names is chosen by a client, and the key-validity URL
by an identity server, so every connection obeys the outbound address policy
(``ip_range_blacklist`` / ``ip_range_whitelist``) as push gateways do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
from base64 import urlsafe_b64encode
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from homeserver.config._reader import is_server_name
from homeserver.errors import InvalidParam, MatrixError
from homeserver.media.preview import AddressFilter, FilteringResolver

logger = logging.getLogger(__name__)

TIMEOUT_S = 10.0
UNBIND_PATH = "/_matrix/identity/v2/3pid/unbind"
MAX_ANSWER_BYTES = 64 * 1024


class IdentityServerError(MatrixError):
    """502: the identity server could not be reached or gave no usable answer."""

    def __init__(
        self, message: str, *, remote_status: int | None = None, remote_errcode: str | None = None
    ) -> None:
        super().__init__(502, "M_UNKNOWN", message)
        # what the identity server answered, when it answered with an error
        self.remote_status = remote_status
        self.remote_errcode = remote_errcode


def lookup_hash(address: str, medium: str, pepper: str) -> str:
    """The ``sha256`` lookup form of a third-party ID (Identity Service API,
    "Client behaviour" of hashed lookups): unpadded URL-safe base64."""
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return urlsafe_b64encode(digest).decode().rstrip("=")


def identity_server_base(id_server: str) -> str:
    """``https://<id_server>``, or 400 M_INVALID_PARAM for a name that is no server name."""
    if not isinstance(id_server, str) or not is_server_name(id_server):
        raise InvalidParam(f"Invalid identity server name: {id_server!r}")
    return f"https://{id_server}"


class IdentityServerClient:
    def __init__(self, addresses: AddressFilter, *, tls: ssl.SSLContext | bool = True) -> None:
        self._addresses = addresses
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=FilteringResolver(self._addresses), ssl=self._tls
                ),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        authorization: str | None = None,
    ) -> Any:
        target = URL(url)
        if target.host is None or target.scheme not in ("https", "http"):
            raise IdentityServerError(f"Not a usable identity server URL: {url}")
        if self._addresses.refuses_literal(target.host):
            raise IdentityServerError(f"{target.host} is not an address this server reaches")
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if authorization is not None:
            headers["Authorization"] = authorization
        try:
            async with self._http().request(
                method,
                target.update_query(query or {}),
                json=body,
                headers=headers,
                allow_redirects=False,
            ) as response:
                raw = await response.content.read(MAX_ANSWER_BYTES + 1)
                if len(raw) > MAX_ANSWER_BYTES:
                    raise IdentityServerError(f"{target.host} answered too much")
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise IdentityServerError(f"Identity server {target.host} unreachable") from exc
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            raise IdentityServerError(f"{target.host} answered no JSON") from None
        if status // 100 != 2:
            errcode = answer.get("errcode") if isinstance(answer, dict) else None
            logger.info(
                "identity server %s: %s %s -> %d %s",
                target.host,
                method,
                target.path,
                status,
                errcode,
            )
            raise IdentityServerError(
                f"Identity server {target.host} answered {status}",
                remote_status=status,
                remote_errcode=errcode if isinstance(errcode, str) else None,
            )
        if not isinstance(answer, dict):
            raise IdentityServerError(f"{target.host} answered no JSON object")
        return answer

    async def lookup(self, id_server: str, token: str, medium: str, address: str) -> str | None:
        """The Matrix user bound to ``(medium, address)``, or None (hashed lookup: the
        sha256 form when the server offers it, else the plain one)."""
        base = identity_server_base(id_server)
        details = await self._request(
            "GET", f"{base}/_matrix/identity/v2/hash_details", token=token
        )
        algorithms = details.get("algorithms")
        pepper = details.get("lookup_pepper")
        if not isinstance(algorithms, list) or not isinstance(pepper, str):
            raise IdentityServerError(f"{id_server} gave unusable hash details")
        if "sha256" in algorithms:
            algorithm, key = "sha256", lookup_hash(address, medium, pepper)
        elif "none" in algorithms:
            algorithm, key = "none", f"{address} {medium}"
        else:
            raise IdentityServerError(f"{id_server} offers no lookup algorithm this server has")
        answer = await self._request(
            "POST",
            f"{base}/_matrix/identity/v2/lookup",
            token=token,
            body={"addresses": [key], "algorithm": algorithm, "pepper": pepper},
        )
        mappings = answer.get("mappings")
        user_id = mappings.get(key) if isinstance(mappings, dict) else None
        return user_id if isinstance(user_id, str) and user_id.startswith("@") else None

    async def store_invite(
        self, id_server: str, token: str, invite: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST /store-invite: the token, display name and public keys of a pending
        invite of a third-party ID not bound yet."""
        base = identity_server_base(id_server)
        answer: dict[str, Any] = await self._request(
            "POST", f"{base}/_matrix/identity/v2/store-invite", token=token, body=invite
        )
        return answer

    async def bind(
        self, id_server: str, token: str, sid: str, client_secret: str, mxid: str
    ) -> dict[str, Any]:
        """POST /3pid/bind: publish the binding of the third-party ID the identity
        server validated in session ``sid`` to ``mxid``; its signed answer."""
        base = identity_server_base(id_server)
        answer: dict[str, Any] = await self._request(
            "POST",
            f"{base}/_matrix/identity/v2/3pid/bind",
            token=token,
            body={"sid": sid, "client_secret": client_secret, "mxid": mxid},
        )
        return answer

    async def unbind(self, id_server: str, body: Mapping[str, Any], authorization: str) -> None:
        """POST /3pid/unbind, signed by this server (``authorization`` is the
        X-Matrix header over ``body``)."""
        base = identity_server_base(id_server)
        await self._request("POST", f"{base}{UNBIND_PATH}", body=body, authorization=authorization)

    async def request_msisdn_token(self, base_url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Ask the msisdn delegate (``account_threepid_delegates.msisdn``) to text a
        validation code; its answer (``sid``, ``msisdn``, ``submit_url`` ...)."""
        answer: dict[str, Any] = await self._request(
            "POST", f"{base_url}/_matrix/identity/api/v1/validate/msisdn/requestToken", body=body
        )
        return answer

    async def validated_threepid(
        self, base_url: str, sid: str, client_secret: str
    ) -> dict[str, Any] | None:
        """The third-party ID the delegate validated in session ``sid`` (``medium``,
        ``address``, ``validated_at``), or None if it did not."""
        try:
            answer: dict[str, Any] = await self._request(
                "GET",
                f"{base_url}/_matrix/identity/api/v1/3pid/getValidated3pid",
                query={"sid": sid, "client_secret": client_secret},
            )
        except IdentityServerError as exc:
            if exc.remote_status is not None:
                return None
            raise
        return answer if "medium" in answer else None

    async def key_is_valid(self, key_validity_url: str, public_key: str) -> bool:
        """Whether the identity server says ``public_key`` is still valid; raises
        IdentityServerError when it cannot be asked."""
        answer = await self._request("GET", key_validity_url, query={"public_key": public_key})
        return answer.get("valid") is True
