"""Events of a room another process writes: sent there, answered once durable.

A process that is not the room's event writer forwards the work to the writer over
the replication HTTP API, in one of two forms:

- ``send``: what a client asked for (type, sender, content, state key, transaction
  ...): the writer builds, authorizes and persists it inside the room's lane, exactly
  as for its own clients, so concurrent senders on different processes never fork
  the room;
- ``persist``: an event built here (a remote invite countersigned by the invitee's
  server, an event received over federation, a room's create event ...) with the
  context it was checked in: the writer persists it inside the room's lane.

The answer names the event and its stream position; before answering its own caller
the forwarding process waits until its view of the events stream has reached that
position, so what the caller reads next (its own event in /sync, the room's new
state) is already there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from homeserver.errors import MatrixError
from homeserver.events import KNOWN_ROOM_VERSIONS, Event
from homeserver.replication.client import ReplicationClient
from homeserver.replication.event_writers import EventWriters
from homeserver.rooms.persister import EventContext
from storage.events import StoredEvent
from storage.stores import Stores

SEND_PATH = "send_event"
PERSIST_PATH = "persist_event"

# Waits until this process's view of the events stream has reached a position.
PositionWait = Callable[[int], Awaitable[None]]

_CONTEXT_FLAGS = (
    "soft_failed",
    "outlier",
    "backfilled",
    "local",
    "out_of_band",
    "de_outlier",
    "replaces_extremities",
)


def context_to_json(context: EventContext) -> dict[str, Any]:
    body: dict[str, Any] = {
        "state_before": [[t, k, e] for (t, k), e in context.state_before.items()],
        "state_group_before": context.state_group_before,
        "rejected_reason": context.rejected_reason,
        "txn_device_id": context.txn_device_id,
        "txn_id": context.txn_id,
        "stripped_state": context.stripped_state,
        "extra_notify": list(context.extra_notify),
    }
    for flag in _CONTEXT_FLAGS:
        body[flag] = getattr(context, flag)
    return body


def context_from_json(body: Mapping[str, Any]) -> EventContext:
    """The context ``context_to_json`` wrote; 400 M_BAD_JSON for anything else."""
    try:
        state = {(str(t), str(k)): str(e) for t, k, e in body["state_before"]}
        group = body.get("state_group_before")
        stripped = body.get("stripped_state")
        context = EventContext(
            state_before=state,
            state_group_before=int(group) if group is not None else None,
            rejected_reason=_optional_str(body.get("rejected_reason")),
            txn_device_id=_optional_str(body.get("txn_device_id")),
            txn_id=_optional_str(body.get("txn_id")),
            stripped_state=list(stripped) if stripped is not None else None,
            extra_notify=[str(u) for u in body.get("extra_notify", [])],
        )
        for flag in _CONTEXT_FLAGS:
            setattr(context, flag, bool(body.get(flag, False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise MatrixError(400, "M_BAD_JSON", f"bad event context: {exc}") from None
    return context


def event_from_json(body: Mapping[str, Any]) -> Event:
    """The event of a ``persist`` request (its PDU and room version)."""
    version = KNOWN_ROOM_VERSIONS.get(str(body.get("room_version")))
    pdu = body.get("event")
    if version is None or not isinstance(pdu, dict):
        raise MatrixError(400, "M_BAD_JSON", "a persist request needs event and room_version")
    try:
        return Event(
            dict(pdu),
            version,
            event_id=_optional_str(body.get("event_id")),
            rejected_reason=_optional_str(body.get("rejected_reason")),
        )
    except ValueError as exc:
        raise MatrixError(400, "M_BAD_JSON", str(exc)) from None


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


class EventForwarder:
    """Sends and persists events of rooms another process writes."""

    def __init__(
        self,
        writers: EventWriters,
        client: ReplicationClient,
        stores: Stores,
        wait_for_position: PositionWait,
    ) -> None:
        self.writers = writers
        self._client = client
        self._stores = stores
        self._wait_for_position = wait_for_position

    def forwards(self, room_id: str) -> bool:
        return not self.writers.is_local(room_id)

    async def send(self, room_id: str, request: Mapping[str, Any]) -> StoredEvent:
        """Have the room's writer build and persist a local event (``EventCreator.send``
        arguments, JSON-ready)."""
        answer = await self._client.call(
            self.writers.writer_for(room_id), f"{SEND_PATH}/{room_id}", request
        )
        return await self._stored(answer)

    async def persist(self, event: Event, context: EventContext) -> StoredEvent:
        body = {
            "event": dict(event.pdu),
            "event_id": event.event_id,
            "room_version": event.room_version.identifier,
            "rejected_reason": event.rejected_reason,
            "context": context_to_json(context),
        }
        answer = await self._client.call(
            self.writers.writer_for(event.room_id), f"{PERSIST_PATH}/{event.room_id}", body
        )
        return await self._stored(answer)

    async def _stored(self, answer: Mapping[str, Any]) -> StoredEvent:
        event_id = answer.get("event_id")
        position = answer.get("stream_ordering")
        if not isinstance(event_id, str):
            raise MatrixError(502, "M_UNKNOWN", "the event writer named no event")
        if isinstance(position, int) and position > 0:
            await self._wait_for_position(position)
        stored = await self._stores.events.get_event(event_id)
        if stored is None:
            raise MatrixError(502, "M_UNKNOWN", f"the event writer lost {event_id}")
        return stored
