"""Writes of the non-event streams that reach a process which does not write them
from inside the server (not from a client request, which nginx routes to the writer),
sent to the writer over the replication HTTP API:

- ``POST /_synapse/replication/federation_edu`` ``{origin, edu_type, content}``: an
  EDU of a federation transaction received by another process (typing, receipts,
  presence, to-device, device lists, signing keys), handled by the writer's own
  transaction handler (an EDU type it has no handler for is ignored, as in a
  transaction);
- ``POST /_synapse/replication/presence_activity`` ``{instance, user_id,
  set_presence, active, reset}``: a user's /sync running on a sync worker (and its
  ``set_presence``), or their activity (a message sent through an event writer);
- ``POST /_synapse/replication/account_data`` ``{user_id, room_id, data_type,
  content}`` (answered ``{"position": n}``) and ``.../room_tag`` ``{user_id, room_id,
  tag, info}`` (``info`` null: removed): account data written inside the server of a
  process that does not write the stream (the fully-read marker of read markers sent
  to the receipts writer, the ``m.push_rules`` change of a push rule, a tag).

The others are answered ``{}``; the caller's bearer token must be ``worker_replication_secret``
(``endpoints.check_secret``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from homeserver.clock import Clock
from homeserver.errors import MatrixError
from homeserver.events.json_codec import dumps_bytes
from homeserver.http.body import json_object
from homeserver.replication.client import REPLICATION_PREFIX
from homeserver.replication.endpoints import check_secret
from homeserver.replication.notices import DEVICE_LISTS, PRESENCE, RECEIPTS, TO_DEVICE, TYPING

logger = logging.getLogger(__name__)

FEDERATION_EDU_PATH = "federation_edu"
PRESENCE_ACTIVITY_PATH = "presence_activity"
ACCOUNT_DATA_PATH = "account_data"
ROOM_TAG_PATH = "room_tag"

# The stream each inbound EDU type writes.
EDU_STREAMS = {
    "m.typing": TYPING,
    "m.receipt": RECEIPTS,
    "m.presence": PRESENCE,
    "m.direct_to_device": TO_DEVICE,
    "m.device_list_update": DEVICE_LISTS,
    "m.signing_key_update": DEVICE_LISTS,
}

# A user whose /syncs on a worker stopped is reported to the presence writer only
# after this long without one, so a client's back-to-back long-polls cost nothing.
SYNC_STOP_LINGER_MS = 10_000

Route = tuple[str, str, Any]


class ReplicationCaller(Protocol):
    """What the forwarders need of ``client.ReplicationClient``."""

    async def call(self, instance: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]: ...


class EduHandling(Protocol):
    """The writer's transaction handler (``federation.transactions``)."""

    async def handle_edu(self, origin: str, edu_type: str, content: dict[str, Any]) -> None: ...


class PresenceWriter(Protocol):
    """The presence writer's service (``homeserver.presence.PresenceService``)."""

    async def remote_activity(
        self,
        instance: str,
        user_id: str,
        set_presence: str | None,
        active: bool,
        *,
        reset: bool = False,
    ) -> None: ...


class AccountDataWriter(Protocol):
    """The account-data writer's service (``homeserver.account_data``)."""

    async def put(
        self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]
    ) -> int: ...

    async def set_tag(self, user_id: str, room_id: str, tag: str, info: dict[str, Any]) -> None: ...

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> None: ...


class AccountDataForwarder:
    """Account data written on a process that does not write the stream, sent to the
    writer (``AccountDataService.forwarder``); answered once stored there."""

    def __init__(self, client: ReplicationCaller, writer: str) -> None:
        self._client = client
        self._writer = writer

    async def put(
        self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]
    ) -> int:
        body = {"user_id": user_id, "room_id": room_id, "data_type": data_type, "content": content}
        answer = await self._client.call(self._writer, ACCOUNT_DATA_PATH, body)
        position = answer.get("position")
        if not isinstance(position, int):
            raise MatrixError(502, "M_UNKNOWN", f"no position from {self._writer}")
        return position

    async def tag(self, user_id: str, room_id: str, tag: str, info: dict[str, Any] | None) -> None:
        body = {"user_id": user_id, "room_id": room_id, "tag": tag, "info": info}
        await self._client.call(self._writer, ROOM_TAG_PATH, body)


class FederationEduForwarder:
    """Sends inbound EDUs of the streams this process does not write to their writer
    (``TransactionHandler.edu_forwarder``)."""

    def __init__(
        self, client: ReplicationCaller, instance: str, writer_of: Callable[[str], str]
    ) -> None:
        self._client = client
        self._instance = instance
        self._writer_of = writer_of

    def writer(self, edu_type: str) -> str | None:
        """The process that handles ``edu_type``, None when it is this one (or no
        stream is written by it)."""
        stream = EDU_STREAMS.get(edu_type)
        if stream is None:
            return None
        writer = self._writer_of(stream)
        return None if writer == self._instance else writer

    def forwards(self, edu_type: str) -> bool:
        return self.writer(edu_type) is not None

    async def forward(self, origin: str, edu_type: str, content: dict[str, Any]) -> None:
        writer = self.writer(edu_type)
        if writer is None:
            raise ValueError(f"{edu_type} is handled here")
        body = {"origin": origin, "edu_type": edu_type, "content": content}
        await self._client.call(writer, FEDERATION_EDU_PATH, body)


class _UserActivity:
    """What a forwarder knows of one user on this process."""

    __slots__ = ("active", "count", "reported", "set_presence", "stopped_at")

    def __init__(self) -> None:
        self.count = 0  # /syncs running here
        self.set_presence: str | None = None  # of the latest one
        self.stopped_at = 0  # when the last one ended
        self.reported: str | None = None  # what the writer was told is running
        self.active = False  # activity not yet reported

    def wanted(self, now_ms: int) -> str | None:
        """The ``set_presence`` the writer should hold (None: no /sync running)."""
        if self.count > 0:
            return self.set_presence
        if self.reported is not None and now_ms - self.stopped_at < SYNC_STOP_LINGER_MS:
            return self.reported  # (still lingering)
        return None

    def idle(self) -> bool:
        return self.count == 0 and self.reported is None and not self.active


class PresenceActivityForwarder:
    """A reader's users' /syncs and activity, sent to the presence writer
    (``PresenceService.activity_forwarder``). Never waits for the writer: each user
    has at most one call in flight; what changes meanwhile is sent by that call's task
    once it is answered (the latest state, not every step). A /sync that ends is
    reported only after ``SYNC_STOP_LINGER_MS`` without another (``tick``). The first
    call after start says ``reset``: the writer ends the syncs it held for this
    process (a restart after a crash)."""

    def __init__(self, client: ReplicationCaller, instance: str, writer: str, clock: Clock) -> None:
        self._client = client
        self._instance = instance
        self._writer = writer
        self._clock = clock
        self._users: dict[str, _UserActivity] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reset = True

    def sync_started(self, user_id: str, set_presence: str) -> None:
        user = self._users.setdefault(user_id, _UserActivity())
        user.count += 1
        user.set_presence = set_presence
        self._kick(user_id)

    def sync_ended(self, user_id: str, set_presence: str) -> None:
        user = self._users.get(user_id)
        if user is None or user.count == 0:
            return
        user.count -= 1
        if user.count == 0:
            user.stopped_at = self._clock.time_ms()

    def active(self, user_id: str) -> None:
        self._users.setdefault(user_id, _UserActivity()).active = True
        self._kick(user_id)

    def tick(self) -> None:
        """Report the users whose /syncs here stopped a while ago."""
        now = self._clock.time_ms()
        for user_id, user in list(self._users.items()):
            if user_id in self._tasks:
                continue
            if user.count == 0 and user.reported is not None and user.wanted(now) is None:
                self._kick(user_id)
            elif user.idle():
                del self._users[user_id]

    def in_flight(self) -> int:
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Wait until every call in flight is answered (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _kick(self, user_id: str) -> None:
        if user_id in self._tasks:
            return  # the task in flight sends what changed once it is answered
        user = self._users[user_id]
        if user.wanted(self._clock.time_ms()) == user.reported and not user.active:
            return
        self._tasks[user_id] = asyncio.get_running_loop().create_task(self._send(user_id, user))

    async def _send(self, user_id: str, user: _UserActivity) -> None:
        try:
            await self._send_changes(user_id, user)
        finally:
            # (no await between the last look at the user and this: a change made
            # after it starts a task of its own)
            self._tasks.pop(user_id, None)

    async def _send_changes(self, user_id: str, user: _UserActivity) -> None:
        while True:
            wanted = user.wanted(self._clock.time_ms())
            active = user.active
            if wanted == user.reported and not active:
                return
            reset, self._reset = self._reset, False
            user.active = False
            body = {
                "instance": self._instance,
                "user_id": user_id,
                "set_presence": wanted,
                "active": active,
                "reset": reset,
            }
            try:
                await self._client.call(self._writer, PRESENCE_ACTIVITY_PATH, body)
            except Exception:
                logger.warning("telling %s of %s's presence failed", self._writer, user_id)
                user.active = user.active or active
                self._reset = self._reset or reset
                return  # the user's next /sync or activity tries again
            user.reported = wanted


class EphemeralEndpoints:
    """The writer's side: ``federation_edu`` and ``presence_activity``."""

    def __init__(
        self,
        secret: str | None,
        transactions: EduHandling | None,
        presence: PresenceWriter | None,
        account_data: AccountDataWriter | None = None,
    ) -> None:
        self._secret = secret.encode("utf-8") if secret else None
        self._transactions = transactions
        self._presence = presence
        self._account_data = account_data

    def routes(self) -> list[Route]:
        return [
            ("POST", f"{REPLICATION_PREFIX}/{FEDERATION_EDU_PATH}", self.federation_edu),
            ("POST", f"{REPLICATION_PREFIX}/{PRESENCE_ACTIVITY_PATH}", self.presence_activity),
            ("POST", f"{REPLICATION_PREFIX}/{ACCOUNT_DATA_PATH}", self.account_data),
            ("POST", f"{REPLICATION_PREFIX}/{ROOM_TAG_PATH}", self.room_tag),
        ]

    async def federation_edu(self, request: web.Request) -> web.Response:
        """An EDU another process received over federation, for a stream written here."""
        check_secret(request, self._secret)
        body = await json_object(request)
        origin, edu_type, content = body.get("origin"), body.get("edu_type"), body.get("content")
        if not isinstance(origin, str) or not isinstance(edu_type, str):
            raise MatrixError(400, "M_BAD_JSON", "origin and edu_type must be strings")
        if not isinstance(content, dict):
            raise MatrixError(400, "M_BAD_JSON", "content must be an object")
        if self._transactions is None:
            raise MatrixError(500, "M_UNKNOWN", "this process receives no federation")
        await self._transactions.handle_edu(origin, edu_type, content)
        return _empty()

    async def presence_activity(self, request: web.Request) -> web.Response:
        """A user's /sync or activity on another process, for the presence writer."""
        check_secret(request, self._secret)
        body = await json_object(request)
        instance, user_id = body.get("instance"), body.get("user_id")
        set_presence, active, reset = (
            body.get("set_presence"),
            body.get("active", False),
            body.get("reset", False),
        )
        if not isinstance(instance, str) or not isinstance(user_id, str):
            raise MatrixError(400, "M_BAD_JSON", "instance and user_id must be strings")
        if set_presence is not None and not isinstance(set_presence, str):
            raise MatrixError(400, "M_BAD_JSON", "set_presence must be a string or null")
        if not isinstance(active, bool) or not isinstance(reset, bool):
            raise MatrixError(400, "M_BAD_JSON", "active and reset must be booleans")
        if self._presence is None:
            raise MatrixError(500, "M_UNKNOWN", "presence is not written here")
        await self._presence.remote_activity(instance, user_id, set_presence, active, reset=reset)
        return _empty()

    async def account_data(self, request: web.Request) -> web.Response:
        """Account data another process wrote, for the account-data writer."""
        check_secret(request, self._secret)
        body = await json_object(request)
        user_id, room_id = body.get("user_id"), body.get("room_id")
        data_type, content = body.get("data_type"), body.get("content")
        if not isinstance(user_id, str) or not isinstance(data_type, str):
            raise MatrixError(400, "M_BAD_JSON", "user_id and data_type must be strings")
        if room_id is not None and not isinstance(room_id, str):
            raise MatrixError(400, "M_BAD_JSON", "room_id must be a string or null")
        if not isinstance(content, dict):
            raise MatrixError(400, "M_BAD_JSON", "content must be an object")
        writer = self._account_writer()
        position = await writer.put(user_id, room_id, data_type, content)
        return web.Response(
            body=dumps_bytes({"position": position}), content_type="application/json"
        )

    async def room_tag(self, request: web.Request) -> web.Response:
        """A room tag another process set (or removed), for the account-data writer."""
        check_secret(request, self._secret)
        body = await json_object(request)
        user_id, room_id, tag = body.get("user_id"), body.get("room_id"), body.get("tag")
        info = body.get("info")
        if not isinstance(user_id, str) or not isinstance(room_id, str) or not isinstance(tag, str):
            raise MatrixError(400, "M_BAD_JSON", "user_id, room_id and tag must be strings")
        if info is not None and not isinstance(info, dict):
            raise MatrixError(400, "M_BAD_JSON", "info must be an object or null")
        writer = self._account_writer()
        if info is None:
            await writer.remove_tag(user_id, room_id, tag)
        else:
            await writer.set_tag(user_id, room_id, tag, info)
        return _empty()

    def _account_writer(self) -> AccountDataWriter:
        if self._account_data is None:
            raise MatrixError(500, "M_UNKNOWN", "account data is not written here")
        return self._account_data


def _empty() -> web.Response:
    return web.Response(body=dumps_bytes({}), content_type="application/json")
