"""This server's key endpoints: its own keys and notary answers (server-server API
"Publishing Keys", "Querying Keys Through Another Server"; OpenAPI
``keys_server.yaml``, ``keys_query.yaml``).

No authentication: keys are public. Our own answer is signed once and reused until
half its validity has passed. As a notary we keep, for each key of a server, the
latest response that listed it. We answer from those while they are good enough:
valid until the asked ``minimum_valid_until_ts`` when one is given, else (the spec's
"current time") within half their lifetime. Otherwise we fetch the server's keys
directly first, as Synapse does, however recently we did (concurrent fetches for
one server are shared), and if that fails serve what we have, expired or not, so
old events stay checkable. A key the server no longer lists is still answered with
the response that listed it. Every response we pass on is counter-signed by us.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from federation.errors import FederationError
from federation.key_responses import KeyResponseError, own_key_response
from federation.keyring import KeyRing
from homeserver.clock import Clock
from homeserver.config import OldSigningKey
from homeserver.errors import BadJson, InvalidParam
from homeserver.events.canonical import canonical_json
from homeserver.events.identifiers import is_valid_server_name
from homeserver.events.signing import SigningKey, sign_json
from homeserver.http.body import get_dict, json_object, query_int
from homeserver.http.middleware import compact_dumps
from storage.server_keys import ServerKeyStore, StoredKeyResponse

logger = logging.getLogger(__name__)

MAX_QUERIED_SERVERS = 100


@dataclass(frozen=True, slots=True)
class KeyCriteria:
    """What a notary query asks of one server: ``key_ids`` maps each asked key ID to
    the time it should be valid until (None: not said); without key IDs every key
    is asked for, valid until ``min_valid_ts``."""

    key_ids: Mapping[str, int | None] = field(default_factory=dict)
    min_valid_ts: int | None = None


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
        self._fetches: dict[str, asyncio.Future[Any]] = {}

    def own_response(self) -> dict[str, Any]:
        """Our signed key response, valid for ``key_refresh_interval`` (default a day)."""
        now = self._clock.time_ms()
        if self._own is None or now >= self._own_refresh_at:
            self._own = own_key_response(
                self.server_name, self._signing_key, self._old_keys, now + self._validity_ms
            )
            self._own_refresh_at = now + self._validity_ms // 2
        return self._own

    async def query(self, criteria: Mapping[str, KeyCriteria]) -> list[dict[str, Any]]:
        """Notary answer: for each server, the responses listing the asked keys (all
        its keys if none are named), fetched again first when not good enough;
        signed by us. Servers we know nothing of are left out."""
        answers = await asyncio.gather(
            *(self._query_one(server, wanted) for server, wanted in criteria.items())
        )
        return [response for answer in answers for response in answer]

    async def _query_one(self, server: str, wanted: KeyCriteria) -> list[dict[str, Any]]:
        if server == self.server_name:
            return [self.own_response()]
        if not is_valid_server_name(server):
            return []
        stored = await self._store.get_responses(server)
        if self._needs_fetch(stored, wanted):
            try:
                await self._fetch(server)
            except (FederationError, KeyResponseError) as exc:
                logger.info("notary: cannot fetch the keys of %s: %s", server, exc)
            else:
                stored = await self._store.get_responses(server)
        if wanted.key_ids:
            chosen: Iterable[StoredKeyResponse] = (
                stored[key_id] for key_id in wanted.key_ids if key_id in stored
            )
        else:
            chosen = stored.values()
        distinct: dict[bytes, dict[str, Any]] = {}
        for row in chosen:
            distinct.setdefault(canonical_json(row.response), row.response)
        return [sign_json(r, self.server_name, self._signing_key) for r in distinct.values()]

    def _needs_fetch(self, stored: Mapping[str, StoredKeyResponse], wanted: KeyCriteria) -> bool:
        now = self._clock.time_ms()

        def good(row: StoredKeyResponse, min_valid_ts: int | None) -> bool:
            if min_valid_ts is not None:
                return row.valid_until_ts >= min_valid_ts
            return now <= row.fetched_ts + (row.valid_until_ts - row.fetched_ts) // 2

        if not wanted.key_ids:
            return not any(good(row, wanted.min_valid_ts) for row in stored.values())
        return any(
            key_id not in stored or not good(stored[key_id], min_ts)
            for key_id, min_ts in wanted.key_ids.items()
        )

    async def _fetch(self, server: str) -> None:
        """Fetch and store the keys of ``server``, joining a fetch under way."""
        task = self._fetches.get(server)
        if task is None:
            task = asyncio.ensure_future(self._keyring.fetch_direct_and_store(server))
            self._fetches[server] = task

            def done(_: asyncio.Future[Any], server: str = server) -> None:
                if self._fetches.get(server) is task:
                    del self._fetches[server]

            task.add_done_callback(done)
        await asyncio.shield(task)


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
        """GET /_matrix/key/v2/query/{serverName} (server-server API:
        perspectivesKeyQuery), and the form with a key ID that Matrix 1.6 dropped
        and Synapse still serves: GET /_matrix/key/v2/query/{serverName}/{keyId}."""
        min_ts: int | None = None
        if "minimum_valid_until_ts" in request.query:
            min_ts = query_int(request, "minimum_valid_until_ts", 0)
        key_id = request.match_info.get("keyId")
        wanted = KeyCriteria({key_id: min_ts}) if key_id else KeyCriteria({}, min_ts)
        answers = await self._keys.query({request.match_info["serverName"]: wanted})
        return _json({"server_keys": answers})

    async def bulk_query_server_keys(self, request: web.Request) -> web.Response:
        """POST /_matrix/key/v2/query (server-server API: bulkPerspectivesKeyQuery)."""
        body = await json_object(request)
        server_keys = get_dict(body, "server_keys")
        if len(server_keys) > MAX_QUERIED_SERVERS:
            raise InvalidParam(f"At most {MAX_QUERIED_SERVERS} servers per query")
        criteria: dict[str, KeyCriteria] = {}
        for server, keys in server_keys.items():
            if not isinstance(keys, dict):
                raise BadJson(f"server_keys.{server} must be an object")
            key_ids: dict[str, int | None] = {}
            for key_id, criterion in keys.items():
                if not isinstance(criterion, dict):
                    raise BadJson(f"server_keys.{server}.{key_id} must be an object")
                value = criterion.get("minimum_valid_until_ts")
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise BadJson("minimum_valid_until_ts must be an integer")
                key_ids[key_id] = value
            criteria[server] = KeyCriteria(key_ids)
        return _json({"server_keys": await self._keys.query(criteria)})
