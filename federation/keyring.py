"""The key ring: other servers' signing keys, fetched, verified, cached, used to check
signatures (server-server API "Retrieving server keys", "Querying Keys Through
Another Server", "Validating hashes and signatures on received events").

Keys are looked up in memory, then in the database (``server_signing_keys``), and
only when neither has a key valid long enough are they fetched: first through each
configured notary (``trusted_key_servers``: one ``POST /_matrix/key/v2/query`` for all
servers at once, the notary's signature checked with its pinned ``verify_keys`` or
its own directly fetched keys), then directly from each server
(``GET /_matrix/key/v2/server``). Every response must be self-signed by the key it
lists before any key of it is used or stored. Concurrent fetches for one server are
shared, and a server is asked again at most once per ``MIN_REFETCH_INTERVAL_S``, so
requests naming unknown keys cannot make us hammer it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nacl.signing import VerifyKey

from federation.errors import FederationError
from federation.key_responses import (
    KeyResponseError,
    VerifiedKeyResponse,
    verify_key_response,
)
from federation.pdu_checks import off_loop_if_large
from federation.requester import FederationRequester
from homeserver.clock import Clock
from homeserver.config import OldSigningKey, TrustedKeyServer
from homeserver.events import Event
from homeserver.events.canonical import decode_base64
from homeserver.events.errors import SignatureError
from homeserver.events.signing import (
    ServerKey,
    SignatureFailure,
    SigningKey,
    key_id_of,
    key_ids_to_fetch,
    verify_event_signatures,
    verify_json,
)
from storage.server_keys import ServerKeyStore, StoredKeyResponse, StoredServerKey

# Batches of events at least this big are verified in VERIFY_THREADS worker threads.
PARALLEL_VERIFY_ABOVE = 1000
VERIFY_THREADS = min(4, os.cpu_count() or 1)

logger = logging.getLogger(__name__)

KEY_FETCH_TIMEOUT_S = 30.0
KEY_RESPONSE_MAX_BYTES = 1024 * 1024
MIN_REFETCH_INTERVAL_S = 30.0
MEMORY_CACHE_SERVERS = 10_000

KeyRequests = Mapping[str, Mapping[str, int]]
"""server name -> {key ID -> minimum valid_until_ts}; an empty inner mapping asks for
any key valid now."""


class KeyRing:
    """Signing keys of every server, ours included, for signature checks."""

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        old_keys: Mapping[str, OldSigningKey],
        store: ServerKeyStore,
        client: FederationRequester,
        clock: Clock,
        *,
        trusted_key_servers: Sequence[TrustedKeyServer] = (),
    ) -> None:
        self.server_name = server_name
        self._store = store
        self._client = client
        self._clock = clock
        self._trusted = tuple(trusted_key_servers)
        self._own: dict[str, ServerKey] = {
            key_id: ServerKey(VerifyKey(decode_base64(old.key)), old.expired_ts)
            for key_id, old in old_keys.items()
        }
        self._own[key_id_of(signing_key)] = ServerKey(signing_key.verify_key, None)
        self._cache: dict[str, dict[str, ServerKey]] = {}
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._last_fetch: dict[str, float] = {}

    # -- looking keys up ---------------------------------------------------------------

    async def get_server_keys(
        self, server_name: str, key_ids: Iterable[str], min_valid_ts: int
    ) -> dict[str, ServerKey]:
        """The keys of ``server_name`` among ``key_ids`` (all its keys if empty) that
        are valid until at least ``min_valid_ts``, fetching them if needed. Keys that
        cannot be found are absent from the answer; this never raises for a remote
        failure."""
        wanted = {key_id: min_valid_ts for key_id in key_ids}
        known = (await self.fetch_keys({server_name: wanted}))[server_name]
        return {
            key_id: key
            for key_id, key in known.items()
            if (not wanted or key_id in wanted)
            and (key.valid_until_ts is None or key.valid_until_ts >= min_valid_ts)
        }

    async def fetch_keys(self, requests: KeyRequests) -> dict[str, dict[str, ServerKey]]:
        """Every key known of each requested server, after fetching for the servers
        whose requested keys were missing or not valid long enough. The answer may
        include keys valid for less than asked: callers check validity per use."""
        result: dict[str, dict[str, ServerKey]] = {}
        missing: dict[str, Mapping[str, int]] = {}
        for server, wanted in requests.items():
            if server == self.server_name:
                result[server] = dict(self._own)
            elif self._satisfied(self._cache.get(server), wanted):
                result[server] = dict(self._cache[server])
            else:
                missing[server] = wanted
        if missing:
            await self._load_stored(missing)
            unsatisfied = {
                server: wanted
                for server, wanted in missing.items()
                if not self._satisfied(self._cache.get(server), wanted)
            }
            if unsatisfied:
                await self._refresh(unsatisfied)
            for server in missing:
                result[server] = dict(self._cache.get(server, {}))
        return result

    def _satisfied(self, known: Mapping[str, ServerKey] | None, wanted: Mapping[str, int]) -> bool:
        if not known:
            return False
        if not wanted:
            now = self._clock.time_ms()
            return any(k.valid_until_ts is None or k.valid_until_ts >= now for k in known.values())
        for key_id, min_ts in wanted.items():
            key = known.get(key_id)
            if key is None or (key.valid_until_ts is not None and key.valid_until_ts < min_ts):
                return False
        return True

    async def _load_stored(self, servers: Iterable[str]) -> None:
        stored = await self._store.get_keys(list(servers))
        for server, rows in stored.items():
            for row in rows.values():
                self._cache_key(server, row.key_id, row.verify_key, row.valid_until_ts)

    def _cache_key(self, server: str, key_id: str, b64: str, valid_until_ts: int) -> None:
        try:
            key = ServerKey(VerifyKey(decode_base64(b64)), valid_until_ts)
        except (ValueError, TypeError):
            logger.warning("stored key %s of %s is not a valid ed25519 key", key_id, server)
            return
        if server not in self._cache and len(self._cache) >= MEMORY_CACHE_SERVERS:
            self._cache.pop(next(iter(self._cache)))
        self._cache.setdefault(server, {})[key_id] = key

    # -- fetching ------------------------------------------------------------------------

    async def _refresh(self, wanted: Mapping[str, Mapping[str, int]]) -> None:
        """Fetch keys for ``wanted`` servers, sharing fetches already under way and
        skipping servers asked too recently."""
        now = self._clock.monotonic()
        waits: set[asyncio.Future[None]] = set()
        start: dict[str, Mapping[str, int]] = {}
        for server, keys in wanted.items():
            inflight = self._inflight.get(server)
            if inflight is not None:
                waits.add(inflight)
                continue
            last = self._last_fetch.get(server)
            if last is not None and now - last < MIN_REFETCH_INTERVAL_S:
                logger.debug("not asking %s for keys again so soon", server)
                continue
            start[server] = keys
        if start:
            task = asyncio.ensure_future(self._fetch_batch(start))
            for server in start:
                self._inflight[server] = task
                self._last_fetch[server] = now

            def done(_: asyncio.Future[None], servers: tuple[str, ...] = tuple(start)) -> None:
                for server in servers:
                    if self._inflight.get(server) is task:
                        del self._inflight[server]

            task.add_done_callback(done)
            waits.add(task)
        if waits:
            await asyncio.gather(*(asyncio.shield(w) for w in waits), return_exceptions=True)

    async def _fetch_batch(self, wanted: Mapping[str, Mapping[str, int]]) -> None:
        remaining = dict(wanted)
        for notary in self._trusted:
            if not remaining:
                return
            try:
                responses = await self._query_notary(notary, remaining)
            except (FederationError, KeyResponseError) as exc:
                logger.info("key query to notary %s failed: %s", notary.server_name, exc)
                continue
            for verified in responses:
                await self._remember(verified, notary.server_name)
            remaining = {
                server: keys
                for server, keys in remaining.items()
                if not self._satisfied(self._cache.get(server), keys)
            }
        await asyncio.gather(*(self._fetch_direct_and_remember(s) for s in remaining))

    async def _fetch_direct_and_remember(self, server: str) -> None:
        try:
            verified = await self.fetch_direct(server)
        except (FederationError, KeyResponseError) as exc:
            logger.info("fetching the keys of %s failed: %s", server, exc)
            return
        await self._remember(verified, server)

    async def fetch_direct(self, server: str) -> VerifiedKeyResponse:
        """``GET /_matrix/key/v2/server`` from ``server`` itself, verified (not
        stored). Raises :class:`FederationError` or :class:`KeyResponseError`."""
        response = await self._client.get_json(
            server,
            "/_matrix/key/v2/server",
            timeout_s=KEY_FETCH_TIMEOUT_S,
            max_bytes=KEY_RESPONSE_MAX_BYTES,
        )
        return verify_key_response(response, server, self._clock.time_ms())

    async def fetch_direct_and_store(self, server: str) -> VerifiedKeyResponse:
        """:meth:`fetch_direct`, then remember the keys (for the notary endpoints)."""
        verified = await self.fetch_direct(server)
        await self._remember(verified, server)
        return verified

    async def _remember(self, verified: VerifiedKeyResponse, from_server: str) -> None:
        now = self._clock.time_ms()
        server = verified.server_name
        rows = [
            StoredServerKey(
                server, key_id, key.key, key.valid_until_ts, key.expired, now, from_server
            )
            for key_id, key in verified.keys.items()
        ]
        response = StoredKeyResponse(
            server, verified.valid_until_ts, now, from_server, verified.response
        )
        await self._store.store_response(response, rows)
        for row in rows:
            self._cache_key(server, row.key_id, row.verify_key, row.valid_until_ts)

    async def _query_notary(
        self, notary: TrustedKeyServer, wanted: Mapping[str, Mapping[str, int]]
    ) -> list[VerifiedKeyResponse]:
        body = {
            "server_keys": {
                server: {key_id: {"minimum_valid_until_ts": ts} for key_id, ts in keys.items()}
                for server, keys in wanted.items()
            }
        }
        answer = await self._client.post_json(
            notary.server_name,
            "/_matrix/key/v2/query",
            body,
            timeout_s=KEY_FETCH_TIMEOUT_S,
            max_bytes=KEY_RESPONSE_MAX_BYTES * max(1, len(wanted)),
        )
        entries = answer.get("server_keys") if isinstance(answer, dict) else None
        if not isinstance(entries, list):
            raise KeyResponseError(f"notary {notary.server_name} sent no server_keys list")
        notary_keys = await self._notary_keys(notary)
        verified: list[VerifiedKeyResponse] = []
        now = self._clock.time_ms()
        for entry in entries:
            server = entry.get("server_name") if isinstance(entry, dict) else None
            if not isinstance(server, str) or server not in wanted:
                continue
            try:
                verify_json(entry, notary.server_name, lambda _s, k: notary_keys.get(k))
                verified.append(verify_key_response(entry, server, now))
            except (SignatureError, KeyResponseError) as exc:
                logger.warning("notary %s: bad keys of %s: %s", notary.server_name, server, exc)
        return verified

    async def _notary_keys(self, notary: TrustedKeyServer) -> dict[str, ServerKey]:
        """The notary's own keys: pinned in the config, else fetched from it directly
        (never through a notary, which could loop)."""
        if notary.verify_keys is not None:
            return {
                key_id: ServerKey(VerifyKey(decode_base64(b64)))
                for key_id, b64 in notary.verify_keys.items()
            }
        name = notary.server_name
        if not self._satisfied(self._cache.get(name), {}):
            await self._load_stored([name])
        if not self._satisfied(self._cache.get(name), {}):
            await self._fetch_direct_and_remember(name)
        now = self._clock.time_ms()
        return {
            key_id: key
            for key_id, key in self._cache.get(name, {}).items()
            if key.valid_until_ts is None or key.valid_until_ts >= now
        }

    # -- verifying -----------------------------------------------------------------------

    async def verify_json_for_server(
        self, obj: Mapping[str, Any], server_name: str, min_valid_ts: int
    ) -> None:
        """Check ``obj`` is signed by ``server_name`` with a key valid until at least
        ``min_valid_ts`` (fetching keys as needed). Raises ``SignatureError``."""
        sigs = obj.get("signatures")
        entity = sigs.get(server_name) if isinstance(sigs, Mapping) else None
        key_ids = [
            k
            for k in (entity if isinstance(entity, Mapping) else ())
            if isinstance(k, str) and k.startswith("ed25519:")
        ]
        if not key_ids:
            raise SignatureError(f"no signature from {server_name}")
        keys = await self.get_server_keys(server_name, key_ids, min_valid_ts)
        verify_json(obj, server_name, lambda _s, key_id: keys.get(key_id))

    async def verify_events(self, events: Sequence[Event]) -> list[list[SignatureFailure]]:
        """The signature failures of each event (an empty list = valid), in order.

        Keys are fetched once for the whole batch, grouped by server (spec:
        "Validating hashes and signatures on received events"; from room version 5 a
        key must be valid at the event's ``origin_server_ts``).
        """
        requests: dict[str, dict[str, int]] = {}
        for event in events:
            try:
                needed = key_ids_to_fetch(event)
            except ValueError:
                continue  # reported by verify_event_signatures
            at_ts = event.origin_server_ts if event.room_version.enforce_key_validity else 0
            for server, key_ids in needed.items():
                if not key_ids:
                    continue  # unsigned by a required server: fails without any key
                per_server = requests.setdefault(server, {})
                for key_id in key_ids:
                    per_server[key_id] = max(per_server.get(key_id, 0), at_ts)
        known = await self.fetch_keys(requests) if requests else {}

        def verify_all(part: Sequence[Event]) -> list[list[SignatureFailure]]:
            return [
                verify_event_signatures(event, lambda s, k: known.get(s, {}).get(k))
                for event in part
            ]

        if len(events) < PARALLEL_VERIFY_ABOVE:
            return await off_loop_if_large(len(events), verify_all, events)
        # ed25519 runs without the GIL (libsodium through cffi): a big batch (a
        # room's state) is checked in parallel parts, one per core.
        size = -(-len(events) // VERIFY_THREADS)
        parts = await asyncio.gather(
            *(
                asyncio.to_thread(verify_all, events[start : start + size])
                for start in range(0, len(events), size)
            )
        )
        return [failures for part in parts for failures in part]
