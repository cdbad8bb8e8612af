"""Fetching room events from another server for the inbound pipeline.

Spec: s2s "Retrieving event authorisation information" (``/event_auth``),
"Backfilling and retrieving missing events" (``/get_missing_events``) and
"Retrieving events" (``/event``, ``/state``, ``/state_ids``). Every answer is
checked for shape here; a failed request or a malformed answer gives an empty
result (logged), never an exception: the caller decides what a gap means.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from federation.errors import FederationError
from federation.requester import FederationRequester

logger = logging.getLogger(__name__)

FEDERATION_V1 = "/_matrix/federation/v1"
MAX_MISSING_EVENTS = 10
FETCH_TIMEOUT_S = 30.0


def _q(value: str) -> str:
    return quote(value, safe="")


def _pdu_list(answer: Any, key: str) -> list[dict[str, Any]]:
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, list):
        return []
    return [p for p in value if isinstance(p, dict)]


def _str_list(answer: Any, key: str) -> list[str] | None:
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return list(value)


@dataclass
class RemoteState:
    """The answer of ``/state_ids`` (or ``/state``): state and auth chain event IDs."""

    state_ids: list[str]
    auth_chain_ids: list[str]
    pdus: list[dict[str, Any]] = field(default_factory=list)


class RemoteEventFetcher:
    """Requests for events of a room, answered defensively."""

    def __init__(self, client: FederationRequester) -> None:
        self._client = client

    async def _get(self, destination: str, path: str, query: Any = None) -> Any:
        try:
            return await self._client.get_json(destination, path, query, timeout_s=FETCH_TIMEOUT_S)
        except FederationError as exc:
            logger.info("GET %s from %s failed: %s", path, destination, exc)
            return None

    async def event(self, destination: str, event_id: str) -> dict[str, Any] | None:
        """``GET /event/{eventId}``: the PDU, or None."""
        answer = await self._get(destination, f"{FEDERATION_V1}/event/{_q(event_id)}")
        pdus = _pdu_list(answer, "pdus")
        return pdus[0] if len(pdus) == 1 else None

    async def event_auth(
        self, destination: str, room_id: str, event_id: str
    ) -> list[dict[str, Any]]:
        """``GET /event_auth/{roomId}/{eventId}``: the event's auth chain PDUs."""
        answer = await self._get(
            destination, f"{FEDERATION_V1}/event_auth/{_q(room_id)}/{_q(event_id)}"
        )
        return _pdu_list(answer, "auth_chain")

    async def state_ids(self, destination: str, room_id: str, event_id: str) -> RemoteState | None:
        """``GET /state_ids/{roomId}?event_id=``: the state before ``event_id``."""
        answer = await self._get(
            destination, f"{FEDERATION_V1}/state_ids/{_q(room_id)}", {"event_id": event_id}
        )
        state = _str_list(answer, "pdu_ids")
        chain = _str_list(answer, "auth_chain_ids")
        if state is None or chain is None:
            return None
        return RemoteState(state, chain)

    async def state(self, destination: str, room_id: str, event_id: str) -> RemoteState | None:
        """``GET /state/{roomId}?event_id=``: the state before ``event_id`` as PDUs."""
        answer = await self._get(
            destination, f"{FEDERATION_V1}/state/{_q(room_id)}", {"event_id": event_id}
        )
        if not isinstance(answer, dict):
            return None
        pdus = _pdu_list(answer, "pdus")
        chain = _pdu_list(answer, "auth_chain")
        return RemoteState([], [], pdus + chain)

    async def missing_events(
        self,
        destination: str,
        room_id: str,
        earliest: Sequence[str],
        latest: Sequence[str],
        min_depth: int,
        limit: int = MAX_MISSING_EVENTS,
    ) -> list[dict[str, Any]]:
        """``POST /get_missing_events/{roomId}``: up to ``limit`` PDUs."""
        body = {
            "earliest_events": list(earliest),
            "latest_events": list(latest),
            "limit": limit,
            "min_depth": min_depth,
        }
        try:
            answer = await self._client.post_json(
                destination,
                f"{FEDERATION_V1}/get_missing_events/{_q(room_id)}",
                body,
                timeout_s=FETCH_TIMEOUT_S,
            )
        except FederationError as exc:
            logger.info("get_missing_events from %s failed: %s", destination, exc)
            return []
        return _pdu_list(answer, "events")[:limit]

    async def backfill(
        self, destination: str, room_id: str, event_ids: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """``GET /backfill/{roomId}?v=...&limit=``: up to ``limit`` PDUs from the
        events ``event_ids`` backwards (those events included)."""
        answer = await self._get(
            destination,
            f"{FEDERATION_V1}/backfill/{_q(room_id)}",
            {"v": list(event_ids), "limit": limit},
        )
        return _pdu_list(answer, "pdus")[:limit]
