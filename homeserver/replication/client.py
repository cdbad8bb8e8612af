"""Calls from one process to another over the internal replication HTTP API.

Requests go to ``http(s)://host:port/_synapse/replication/<name>`` of the instance
(``instance_map``), with ``Authorization: Bearer <worker_replication_secret>`` when a
secret is set. A Matrix error the other process answers is raised here unchanged, so
the client sees the writer's answer. A process that cannot be reached (restarting
after a crash, say) is tried again until ``retry_for_s`` has passed: every call made
through here is safe to repeat (sends carry their transaction ID; a persisted event
is persisted once by ID).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from homeserver.config.workers import InstanceLocation
from homeserver.errors import MatrixError
from homeserver.events.json_codec import dumps_bytes, loads

logger = logging.getLogger(__name__)

REPLICATION_PREFIX = "/_synapse/replication"


class ReplicationClient:
    def __init__(
        self,
        locations: Mapping[str, InstanceLocation],
        secret: str | None,
        *,
        retry_for_s: float = 30.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._locations = dict(locations)
        self._headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self._retry_for_s = retry_for_s
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                connector=aiohttp.TCPConnector(limit=0, ssl=False),
            )
        return self._session

    async def call(self, instance: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``instance``'s replication endpoint ``path``; its JSON answer."""
        location = self._locations.get(instance)
        if location is None:
            raise MatrixError(500, "M_UNKNOWN", f"no instance_map entry for {instance}")
        url = f"{location.base_url}{REPLICATION_PREFIX}/{path}"
        data = dumps_bytes(body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.05
        while True:
            try:
                async with self._client().post(
                    url,
                    data=data,
                    headers={**self._headers, "Content-Type": "application/json"},
                ) as response:
                    raw = await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientConnectionError) as error:
                if loop.time() + delay > deadline:
                    logger.warning("replication call %s to %s failed: %s", path, instance, error)
                    raise MatrixError(
                        503, "M_UNKNOWN", f"{instance} is unavailable, try again"
                    ) from None
                await self._sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            try:
                answer = loads(raw) if raw else {}
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise MatrixError(502, "M_UNKNOWN", f"bad answer from {instance} to {path}")
            if status >= 400:
                raise MatrixError(
                    status,
                    str(answer.get("errcode", "M_UNKNOWN")),
                    str(answer.get("error", "")),
                    extra={k: v for k, v in answer.items() if k not in ("errcode", "error")},
                )
            return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
