"""The internal replication HTTP API an event writer serves (the ``replication``
listener resource): ``POST /_synapse/replication/send_event/{roomId}`` and
``POST /_synapse/replication/persist_event/{roomId}``, see forwarding.py.

Only other processes of this homeserver call it: when ``worker_replication_secret``
is set every request must carry it as a bearer token (compared in constant time);
the listener itself belongs on an internal address.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from homeserver.errors import MatrixError
from homeserver.events.json_codec import dumps_bytes
from homeserver.http.body import get_dict, get_int, get_str, json_object
from homeserver.replication.client import REPLICATION_PREFIX
from homeserver.replication.event_writers import EventWriters
from homeserver.replication.forwarding import (
    PERSIST_PATH,
    SEND_PATH,
    context_from_json,
    event_from_json,
)
from homeserver.rooms.creator import EventCreator, TxnKey
from homeserver.rooms.persister import EventPersister
from storage.events import StoredEvent

logger = logging.getLogger(__name__)

Route = tuple[str, str, Any]


def _answer(stored: StoredEvent) -> web.Response:
    body = {"event_id": stored.event_id, "stream_ordering": stored.stream_ordering}
    return web.Response(body=dumps_bytes(body), content_type="application/json")


def check_secret(request: web.Request, secret: bytes | None) -> None:
    """403 M_FORBIDDEN unless the request carries ``secret`` as its bearer token
    (compared in constant time); anything goes when no secret is set."""
    if secret is None:
        return
    header = request.headers.get("Authorization", "")
    given = header.removeprefix("Bearer ").encode("utf-8")
    if not header.startswith("Bearer ") or not hmac.compare_digest(given, secret):
        raise MatrixError(403, "M_FORBIDDEN", "Bad replication secret")


class ReplicationEndpoints:
    def __init__(
        self,
        secret: str | None,
        writers: EventWriters,
        creator: EventCreator,
        persister: EventPersister,
    ) -> None:
        self._secret = secret.encode("utf-8") if secret else None
        self._writers = writers
        self._creator = creator
        self._persister = persister

    def routes(self) -> list[Route]:
        return [
            ("POST", f"{REPLICATION_PREFIX}/{SEND_PATH}/{{room_id}}", self.send_event),
            ("POST", f"{REPLICATION_PREFIX}/{PERSIST_PATH}/{{room_id}}", self.persist_event),
        ]

    async def _request(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        """Check the caller and the room; the room ID and the JSON body."""
        check_secret(request, self._secret)
        room_id = request.match_info["room_id"]
        if not self._writers.is_local(room_id):
            raise MatrixError(
                400, "M_UNKNOWN", f"{self._writers.instance} is not the event writer of {room_id}"
            )
        return room_id, await json_object(request)

    async def send_event(self, request: web.Request) -> web.Response:
        """Build and persist a local event for another process (its client's send)."""
        room_id, body = await self._request(request)
        event_type = body.get("type")
        sender = body.get("sender")
        content = body.get("content")
        if not isinstance(event_type, str) or not isinstance(sender, str):
            raise MatrixError(400, "M_BAD_JSON", "type and sender must be strings")
        if not isinstance(content, dict):
            raise MatrixError(400, "M_BAD_JSON", "content must be an object")
        txn = get_dict(body, "txn", None)
        txn_key = None
        if txn is not None:
            device_id, txn_id = txn.get("device_id"), txn.get("txn_id")
            if not isinstance(device_id, str) or not isinstance(txn_id, str):
                raise MatrixError(400, "M_BAD_JSON", "txn needs device_id and txn_id")
            txn_key = TxnKey(device_id, txn_id)
        extra = get_dict(body, "extra", None)
        stripped = body.get("stripped_state_keys")
        keys: list[tuple[str, str]] | None = None
        if stripped is not None:
            try:
                keys = [(str(t), str(k)) for t, k in stripped]
            except (TypeError, ValueError):
                raise MatrixError(400, "M_BAD_JSON", "bad stripped_state_keys") from None
        ts = get_int(body, "origin_server_ts", None)
        stored = await self._creator.send(
            room_id,
            event_type,
            sender,
            content,
            state_key=get_str(body, "state_key", None),
            redacts=get_str(body, "redacts", None),
            txn=txn_key,
            extra=extra,
            stripped_state_keys=keys,
            origin_server_ts=ts,
        )
        return _answer(stored)

    async def persist_event(self, request: web.Request) -> web.Response:
        """Persist an event another process built or received, in the room's lane."""
        room_id, body = await self._request(request)
        event = event_from_json(body)
        if event.room_id != room_id:
            raise MatrixError(400, "M_BAD_JSON", "the event is not in that room")
        context = context_from_json(get_dict(body, "context"))
        async with self._creator.lanes.lane(room_id):
            existing = await self._creator.stored_event(event.event_id)
            if existing is not None and (
                not existing.outlier or existing.stream_ordering is not None
            ):
                return _answer(existing)  # a retry of a persist that committed
            stored = await self._persister.persist(event, context)
        return _answer(stored)
