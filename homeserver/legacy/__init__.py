"""The legacy client API that bots, bridges and test suites still call.

Client-server API r0 "deprecated" endpoints, as the current spec still documents
them: the event stream (``GET /events``, also for peeking into a world-readable
room), a single event (``GET /events/{eventId}``), and the snapshots
``GET /initialSync`` and ``GET /rooms/{roomId}/initialSync``.

- ``client_format``: the v1 event format these endpoints answer with (pure);
- ``ephemeral``: typing, receipts, presence and account data as flat events;
- ``event_stream``: ``GET /events`` and ``GET /events/{eventId}``;
- ``initial_sync``: the two snapshots;
- ``api``: the services built together.
"""

from homeserver.legacy.api import LegacyApi
from homeserver.legacy.event_stream import EventStreamService, StreamRequest
from homeserver.legacy.initial_sync import InitialSyncService

__all__ = ["EventStreamService", "InitialSyncService", "LegacyApi", "StreamRequest"]
