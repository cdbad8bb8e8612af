"""Inbound transactions: ``PUT /_matrix/federation/v1/send/{txnId}`` (s2s
"Transactions", "EDUs", "Server Access Control Lists (ACLs)").

* the origin is the X-Matrix authenticated server; at most 50 PDUs and 100 EDUs,
  else 400 ``M_BAD_JSON`` and nothing is processed;
* idempotent per (origin, txnId): the answer of a processed transaction is kept
  (``RECEIVED_TXN_KEEP_MS``) and given again; transactions of one origin are handled
  one at a time, so a retry of one still running waits for its answer;
* PDUs are grouped by room; a room whose ``m.room.server_acl`` denies the origin gets
  an error for each of its PDUs; otherwise they go through the event pipeline. A PDU
  stored as rejected (auth rules) answers ``{}``, as Synapse: it was handled; errors
  are for PDUs not processed (bad signature, unknown room, state not determinable). PDUs
  are accepted from any origin when correctly signed by their sender's server (the
  signature checks, not the origin, decide), as the spec lets servers relay events;
* EDUs go to the handler registered for their type (``register_edu_handler``), after
  :func:`edu_from_origin` dropped what the origin may not speak for: users of other
  servers, rooms whose ACL denies the origin (typing, receipts). With workers, an EDU
  of a stream another process writes is sent there (``edu_forwarder``), whose
  replication endpoint hands it to :meth:`TransactionHandler.handle_edu`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from federation.event_pipeline import FederationEventPipeline, Rejection
from federation.pdu_checks import pdu_event_id
from federation.server_acl import ServerAclChecker
from homeserver.clock import Clock
from homeserver.errors import BadJson
from homeserver.events import KNOWN_ROOM_VERSIONS, Event
from homeserver.http.body import json_object
from homeserver.http.middleware import compact_dumps
from homeserver.metrics.components import FederationMetrics
from storage.federation_queue import FederationQueueStore

logger = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
RECEIVED_TXN_KEEP_MS = 24 * 3600 * 1000

EduHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
"""``handler(origin, content)`` for one EDU type; content already checked by origin."""


class EduForwarder(Protocol):
    """Sends EDUs of streams another process writes to that process."""

    def forwards(self, edu_type: str) -> bool: ...

    async def forward(self, origin: str, edu_type: str, content: dict[str, Any]) -> None: ...


EDU_TYPES = (
    "m.typing",
    "m.receipt",
    "m.presence",
    "m.device_list_update",
    "m.direct_to_device",
    "m.signing_key_update",
)


def _server_of(user_id: Any) -> str | None:
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        return None
    _local, sep, server = user_id.partition(":")
    return server if sep else None


async def edu_from_origin(
    origin: str, edu_type: str, content: dict[str, Any], acl: ServerAclChecker
) -> dict[str, Any] | None:
    """The part of an EDU ``origin`` may send, or None to ignore it.

    Typing, device lists, signing keys and to-device messages name one user, who
    must be of the origin; presence and receipts keep only the origin's users; typing
    and receipts for rooms whose ACL denies the origin are dropped.
    """
    if edu_type == "m.typing":
        room_id = content.get("room_id")
        if _server_of(content.get("user_id")) != origin or not isinstance(room_id, str):
            return None
        return content if await acl.allowed(origin, room_id) else None
    if edu_type in ("m.device_list_update", "m.signing_key_update"):
        return content if _server_of(content.get("user_id")) == origin else None
    if edu_type == "m.direct_to_device":
        return content if _server_of(content.get("sender")) == origin else None
    if edu_type == "m.presence":
        push = content.get("push")
        if not isinstance(push, list):
            return None
        kept = [p for p in push if isinstance(p, dict) and _server_of(p.get("user_id")) == origin]
        return {**content, "push": kept} if kept else None
    if edu_type == "m.receipt":
        return await _receipts_from_origin(origin, content, acl)
    return content


async def _receipts_from_origin(
    origin: str, content: dict[str, Any], acl: ServerAclChecker
) -> dict[str, Any] | None:
    rooms: dict[str, Any] = {}
    for room_id, by_type in content.items():
        if not isinstance(by_type, dict) or not await acl.allowed(origin, room_id):
            continue
        kept_types: dict[str, Any] = {}
        for receipt_type, by_user in by_type.items():
            if not isinstance(by_user, dict):
                continue
            users = {u: r for u, r in by_user.items() if _server_of(u) == origin}
            if users:
                kept_types[receipt_type] = users
        if kept_types:
            rooms[room_id] = kept_types
    return rooms or None


class TransactionHandler:
    """Receives transactions: PDUs to the pipeline, EDUs to their handlers."""

    def __init__(
        self,
        pipeline: FederationEventPipeline,
        store: FederationQueueStore,
        acl: ServerAclChecker,
        clock: Clock,
    ) -> None:
        self._pipeline = pipeline
        self._store = store
        self._acl = acl
        self._clock = clock
        self.edu_handlers: dict[str, EduHandler] = {}
        self._origin_locks: dict[str, asyncio.Lock] = {}
        self.metrics: FederationMetrics | None = None  # set when metrics are on
        self.edu_forwarder: EduForwarder | None = None  # set with workers

    def register_edu_handler(self, edu_type: str, handler: EduHandler) -> None:
        """Route EDUs of ``edu_type`` to ``handler(origin, content)`` (one per type)."""
        if edu_type in self.edu_handlers:
            raise ValueError(f"an EDU handler for {edu_type} is already registered")
        self.edu_handlers[edu_type] = handler

    # -- the endpoint -------------------------------------------------------------------

    async def on_send_transaction(self, origin: str, request: web.Request) -> web.Response:
        """PUT /_matrix/federation/v1/send/{txnId} (s2s: sendTransaction)."""
        txn_id = request.match_info["txnId"]
        body = await json_object(request)
        pdus, edus = parse_transaction(body)
        answer = await self.process_transaction(origin, txn_id, pdus, edus)
        return web.json_response(answer, dumps=compact_dumps)

    async def process_transaction(
        self, origin: str, txn_id: str, pdus: list[Any], edus: list[Any]
    ) -> dict[str, Any]:
        lock = self._origin_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            previous = await self._store.get_received_transaction(origin, txn_id)
            if previous is not None:
                return previous
            if self.metrics is not None:
                self.metrics.transaction_received(len(pdus), len(edus))
            results = await self._process_pdus(origin, pdus)
            await self._process_edus(origin, edus)
            answer = {"pdus": results}
            await self._store.store_received_transaction(
                origin, txn_id, answer, self._clock.time_ms(), RECEIVED_TXN_KEEP_MS
            )
        return answer

    # -- PDUs ---------------------------------------------------------------------------

    async def _process_pdus(self, origin: str, pdus: list[Any]) -> dict[str, dict[str, str]]:
        by_room: dict[str, list[Any]] = {}
        for pdu in pdus:
            room_id = pdu_room_id(pdu)
            if room_id is not None:
                by_room.setdefault(room_id, []).append(pdu)
            else:
                logger.info("ignoring a PDU without room_id from %s", origin)
        results: dict[str, dict[str, str]] = {}
        for room_id, room_pdus in by_room.items():
            try:
                outcome = await self._process_room(origin, room_id, room_pdus)
            except Exception:
                logger.exception("PDUs of %s from %s failed", room_id, origin)
                outcome = {}
                rv = await self._pipeline.room_version(room_id)
                for pdu in room_pdus:
                    event_id = pdu_event_id(pdu, rv)
                    if event_id is not None:
                        outcome[event_id] = "Internal error processing the event"
            for event_id, error in outcome.items():
                # an event stored as rejected was handled (as Synapse answers)
                handled = error is None or isinstance(error, Rejection)
                results[event_id] = {} if handled else {"error": error}
        return results

    async def _process_room(
        self, origin: str, room_id: str, pdus: list[Any]
    ) -> Mapping[str, str | None]:
        if not await self._acl.allowed(origin, room_id):
            rv = await self._pipeline.room_version(room_id)
            denied: dict[str, str | None] = {}
            for pdu in pdus:
                event_id = pdu_event_id(pdu, rv)
                if event_id is not None:
                    denied[event_id] = "Server is denied by the room's server ACL"
            return denied
        return await self._pipeline.receive_room_pdus(origin, room_id, pdus)

    # -- EDUs ---------------------------------------------------------------------------

    async def _process_edus(self, origin: str, edus: list[Any]) -> None:
        for edu in edus:
            if not isinstance(edu, dict):
                continue
            edu_type, content = edu.get("edu_type"), edu.get("content")
            if not isinstance(edu_type, str) or not isinstance(content, dict):
                continue
            try:
                await self.handle_edu(origin, edu_type, content)
            except Exception:
                logger.exception("handling %s EDU from %s failed", edu_type, origin)

    async def handle_edu(self, origin: str, edu_type: str, content: dict[str, Any]) -> None:
        """One EDU of ``origin``: what the origin may send of it, to its handler here
        or to the process that writes its stream; an EDU of a type nobody handles is
        ignored."""
        forwarder = self.edu_forwarder
        forwarded = forwarder is not None and forwarder.forwards(edu_type)
        handler = self.edu_handlers.get(edu_type)
        if handler is None and not forwarded:
            logger.debug("no handler for EDU %s from %s", edu_type, origin)
            return
        allowed = await edu_from_origin(origin, edu_type, content, self._acl)
        if allowed is None:
            logger.info("ignoring %s EDU from %s: not the origin's to send", edu_type, origin)
            return
        if forwarder is not None and forwarded:
            await forwarder.forward(origin, edu_type, allowed)
        elif handler is not None:
            await handler(origin, allowed)


def pdu_room_id(pdu: Any) -> str | None:
    """The room a PDU is for: its ``room_id``, or for a v12 ``m.room.create`` (which
    has none) the room ID derived from its event ID."""
    if not isinstance(pdu, dict):
        return None
    room_id = pdu.get("room_id")
    if isinstance(room_id, str):
        return room_id
    content = pdu.get("content")
    version = content.get("room_version") if isinstance(content, dict) else None
    rv = KNOWN_ROOM_VERSIONS.get(version) if isinstance(version, str) else None
    if pdu.get("type") != "m.room.create" or rv is None or not rv.room_id_from_create_event:
        return None
    try:
        return Event.from_pdu(pdu, rv).room_id
    except (ValueError, TypeError):
        return None


def parse_transaction(body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The PDUs and EDUs of a transaction body; M_BAD_JSON when over the limits."""
    pdus = body.get("pdus")
    edus = body.get("edus", [])
    if not isinstance(pdus, list):
        raise BadJson("'pdus' must be an array")
    if edus is None:
        edus = []
    if not isinstance(edus, list):
        raise BadJson("'edus' must be an array")
    if len(pdus) > MAX_PDUS:
        raise BadJson(f"A transaction may carry at most {MAX_PDUS} PDUs")
    if len(edus) > MAX_EDUS:
        raise BadJson(f"A transaction may carry at most {MAX_EDUS} EDUs")
    return pdus, edus
