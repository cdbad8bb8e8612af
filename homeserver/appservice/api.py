"""Talking to application services (the Application Service API, /_matrix/app/v1).

Every request carries ``Authorization: Bearer <hs_token>`` and goes to the URL the
registration names, as configured: a bridge usually listens on loopback, so these
requests are not subject to ``ip_range_blacklist`` (as in Synapse). Each request has
a timeout, so a slow service delays only its own queue. The hs_token is never
logged: messages name the service by its ID.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from homeserver.appservice.registration import ApplicationService

logger = logging.getLogger(__name__)

APP_PREFIX = "/_matrix/app/v1"
TRANSACTION_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 10.0


class AppServiceUnreachable(Exception):
    """The service could not be reached, timed out or answered with an error.
    ``status`` is its HTTP status when it answered; ``body`` its JSON answer if any."""

    def __init__(
        self, message: str, status: int | None = None, body: object = None, text: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.text = text  # the answer's body as received


class AppServiceTimeout(AppServiceUnreachable):
    """The service did not answer in time."""


class AppServiceClient:
    """HTTP requests from this homeserver to its application services."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | bool = True,
        transaction_timeout_s: float = TRANSACTION_TIMEOUT_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
    ) -> None:
        self._tls = tls
        self._transaction_timeout_s = transaction_timeout_s
        self._query_timeout_s = query_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._tls, limit=0),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        service: ApplicationService,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | list[str]] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """One request under ``/_matrix/app/v1``; the JSON answer of a 2xx, else
        ``AppServiceUnreachable``."""
        if service.url is None:
            raise AppServiceUnreachable(f"application service {service.id} has no url")
        url = service.url + APP_PREFIX + path
        headers = {"Authorization": f"Bearer {service.hs_token}"}
        params: list[tuple[str, str]] = []
        for key, value in (query or {}).items():
            for item in value if isinstance(value, list) else [value]:
                params.append((key, item))
        timeout = aiohttp.ClientTimeout(total=timeout_s or self._query_timeout_s)
        try:
            async with self._client().request(
                method,
                url,
                json=body,
                params=params or None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                text = await resp.text(errors="replace")
                try:
                    answer = json.loads(text) if text else None
                except ValueError:
                    answer = None
                if resp.status // 100 != 2:
                    raise AppServiceUnreachable(
                        f"application service {service.id} answered {resp.status} to "
                        f"{method} {path.split('?')[0]}",
                        resp.status,
                        answer,
                        text,
                    )
                return answer
        except AppServiceUnreachable:
            raise
        except TimeoutError:
            raise AppServiceTimeout(
                f"application service {service.id}: no answer in time to {method} "
                f"{path.split('?')[0]}"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AppServiceUnreachable(
                f"application service {service.id}: {type(exc).__name__}: {exc}"
            ) from None

    # -- the endpoints ----------------------------------------------------------

    async def push_transaction(
        self, service: ApplicationService, txn_id: int, body: Mapping[str, Any]
    ) -> None:
        """``PUT /transactions/{txnId}``; raises when it was not accepted."""
        await self.request(
            service,
            "PUT",
            f"/transactions/{txn_id}",
            body=body,
            timeout_s=self._transaction_timeout_s,
        )

    async def query_user(self, service: ApplicationService, user_id: str) -> bool:
        """``GET /users/{userId}``: whether the service says it made the user."""
        return await self._query_exists(service, f"/users/{quote(user_id, safe='')}", "user")

    async def query_alias(self, service: ApplicationService, alias: str) -> bool:
        """``GET /rooms/{roomAlias}``: whether the service says it made the alias."""
        return await self._query_exists(service, f"/rooms/{quote(alias, safe='')}", "alias")

    async def _query_exists(self, service: ApplicationService, path: str, what: str) -> bool:
        """A 2xx answer is yes; 404 is no; any other failure is logged and is no."""
        try:
            await self.request(service, "GET", path)
        except AppServiceUnreachable as exc:
            if exc.status != 404:
                logger.warning("%s query: %s", what, exc)
            return False
        return True

    async def ping(self, service: ApplicationService, transaction_id: str | None) -> int:
        """``POST /ping``; the round trip in milliseconds."""
        body: dict[str, Any] = {}
        if transaction_id is not None:
            body["transaction_id"] = transaction_id
        started = time.monotonic()
        await self.request(service, "POST", "/ping", body=body)
        return int((time.monotonic() - started) * 1000)

    async def thirdparty(
        self,
        service: ApplicationService,
        path: str,
        query: Mapping[str, str | list[str]] | None = None,
    ) -> Any:
        """``GET /thirdparty/...``: the service's answer (None if it failed)."""
        try:
            return await self.request(service, "GET", "/thirdparty" + path, query=query)
        except AppServiceUnreachable as exc:
            logger.warning("third-party lookup: %s", exc)
            return None
