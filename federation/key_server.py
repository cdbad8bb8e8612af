"""This server's key endpoints: its own keys and notary answers (server-server API
"Publishing Keys", "Querying Keys Through Another Server"; OpenAPI
``keys_server.yaml``, ``keys_query.yaml``).

No authentication: keys are public. Our own answer is signed once and reused until
half its validity has passed. As a notary we answer from the stored responses while
they are within half their lifetime and valid until the asked
``minimum_valid_until_ts``; otherwise we fetch the server's keys directly, and if that
fails serve the last response we have (so old events stay checkable). Every response
we pass on is counter-signed by us.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from federation.errors import FederationError
from federation.key_responses import KeyResponseError, own_key_response
from federation.keyring import MIN_REFETCH_INTERVAL_S, KeyRing
from homeserver.clock import Clock
from homeserver.config import OldSigningKey
from homeserver.errors import BadJson, InvalidParam
from homeserver.events.identifiers import is_valid_server_name
from homeserver.events.signing import SigningKey, sign_json
from homeserver.http.body import get_dict, json_object, query_int
from homeserver.http.middleware import compact_dumps
from storage.server_keys import ServerKeyStore

logger = logging.getLogger(__name__)

MAX_QUERIED_SERVERS = 100


class KeyServer:
    """Builds our key response and notary answers."""

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        old_keys: Mapping[str, OldSigningKey],
        validity_ms: int,
        keyring: KeyRing,
        store: ServerKeyStore,
        clock: Clock,
    ) -> None:
        self.server_name = server_name
        self._signing_key = signing_key
        self._old_keys = old_keys
        self._validity_ms = validity_ms
        self._keyring = keyring
        self._store = store
        self._clock = clock
        self._own: dict[str, Any] | None = None
        self._own_refresh_at = 0

    def own_response(self) -> dict[str, Any]:
        """Our signed key response, valid for ``key_refresh_interval`` (default a day)."""
        now = self._clock.time_ms()
        if self._own is None or now >= self._own_refresh_at:
            self._own = own_key_response(
                self.server_name, self._signing_key, self._old_keys, now + self._validity_ms
            )
            self._own_refresh_at = now + self._validity_ms // 2
        return self._own

    async def query(self, criteria: Mapping[str, int]) -> list[dict[str, Any]]:
        """Notary answer: for each server, its key response valid until at least the
        given timestamp if we can get one, else the latest we have; signed by us."""
        answers = await asyncio.gather(
            *(self._query_one(server, min_ts) for server, min_ts in criteria.items())
        )
        return [answer for answer in answers if answer is not None]

    async def _query_one(self, server: str, min_valid_ts: int) -> dict[str, Any] | None:
        if server == self.server_name:
            return self.own_response()
        if not is_valid_server_name(server):
            return None
        now = self._clock.time_ms()
        stored = await self._store.get_response(server)
        if stored is not None:
            half_life = stored.fetched_ts + (stored.valid_until_ts - stored.fetched_ts) // 2
            fresh = now <= half_life and stored.valid_until_ts >= min_valid_ts
            if fresh or now - stored.fetched_ts < MIN_REFETCH_INTERVAL_S * 1000:
                return sign_json(stored.response, self.server_name, self._signing_key)
        try:
            verified = await self._keyring.fetch_direct_and_store(server)
            response = verified.response
        except (FederationError, KeyResponseError) as exc:
            logger.info("notary: cannot fetch the keys of %s: %s", server, exc)
            if stored is None:
                return None
            response = stored.response
        return sign_json(response, self.server_name, self._signing_key)


def _json(body: object) -> web.Response:
    return web.json_response(body, dumps=compact_dumps)


class KeyHandlers:
    """Handlers of ``/_matrix/key/v2/*``."""

    def __init__(self, key_server: KeyServer, clock: Clock) -> None:
        self._keys = key_server
        self._clock = clock

    async def get_server_keys(self, request: web.Request) -> web.Response:
        """GET /_matrix/key/v2/server (and the deprecated /server/{keyId})
        (server-server API: getServerKey)."""
        return _json(self._keys.own_response())

    async def query_server_keys(self, request: web.Request) -> web.Response:
        """GET /_matrix/key/v2/query/{serverName} (server-server API: perspectivesKeyQuery)."""
        min_ts = query_int(request, "minimum_valid_until_ts", self._clock.time_ms())
        answers = await self._keys.query({request.match_info["serverName"]: min_ts})
        return _json({"server_keys": answers})

    async def bulk_query_server_keys(self, request: web.Request) -> web.Response:
        """POST /_matrix/key/v2/query (server-server API: bulkPerspectivesKeyQuery)."""
        body = await json_object(request)
        server_keys = get_dict(body, "server_keys")
        if len(server_keys) > MAX_QUERIED_SERVERS:
            raise InvalidParam(f"At most {MAX_QUERIED_SERVERS} servers per query")
        now = self._clock.time_ms()
        criteria: dict[str, int] = {}
        for server, keys in server_keys.items():
            if not isinstance(keys, dict):
                raise BadJson(f"server_keys.{server} must be an object")
            values: list[int] = []
            for key_id, criterion in keys.items():
                if not isinstance(criterion, dict):
                    raise BadJson(f"server_keys.{server}.{key_id} must be an object")
                value = criterion.get("minimum_valid_until_ts", now)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise BadJson("minimum_valid_until_ts must be an integer")
                values.append(value)
            criteria[server] = max(values) if values else now
        return _json({"server_keys": await self._keys.query(criteria)})
