"""Which process does which background work, and how work produced elsewhere
reaches it (issue 17, "Roles").

Every process of a deployment runs the same code; ``ProcessRoles`` says, from the
worker options, what this one runs:

- **federation sending** (``federation_sender_instances``): any process may queue
  PDUs and EDUs (the queue is in the database), but only a destination's sender
  (``WorkerConfig.federation_sender_for``) drains it. A process that queues for a
  destination another instance sends to publishes ``FederationQueued``; one that
  hears from a remote server (inbound federation) or resets its backoff (the admin
  API) publishes ``RemoteServerUp``. A sender resumes every queue of its shard
  from the database when it starts (``FederationSender.retry_due``).
- **pushers** (``pusher_instances``, users sharded by ``pusher_for``): only there
  are pushers loaded and run. The event writer computes push actions inside the
  event's transaction and publishes ``PushersWake`` for users whose pushers run
  elsewhere (likewise a read receipt, for the badge); pushers set or removed
  elsewhere arrive as ``CacheNotice(PUSHERS)`` (``PusherPool.reload_user`` keeps
  only the users this instance pushes for).
- **background tasks** (``run_background_tasks_on``): message expiry, redaction
  censoring, retention purges, the push action pruner, delayed events.
  ``media_instance_running_background_jobs``: media retention.
  ``notify_appservices_from_worker``: appservice delivery, woken by the events
  other processes commit (``RoomEventNotice``).
- **event writers** run the jobs fed by their own persisted hooks (the fork healer,
  which notes remote events as they are persisted).
- **every process** runs the ephemeral ticker: the typing and presence writers time
  out typists and presence there, and a reader reports its users' sync activity to
  the presence writer from it.
- **user directory** (``update_user_directory_from_worker``): the directory is
  updated inside the event's transaction on the event writer (so it never lags the
  room state); the option only moves the initial ``fill()`` of users and rooms held
  from before the directory to that process.

A single process (the default configuration) holds every role, publishes nothing
and behaves exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from homeserver.clock import Clock
from homeserver.config.workers import WorkerConfig
from homeserver.replication.notices import (
    FederationQueued,
    Notice,
    NoticePublisher,
    PushersWake,
    RemoteServerUp,
    RoomEventNotice,
)

logger = logging.getLogger(__name__)

# how often one destination's activity is told to its sender (it only ends a backoff)
REMOTE_UP_INTERVAL_MS = 1_000
# destinations remembered for that throttle before the oldest are forgotten
REMOTE_UP_MEMORY = 10_000


@dataclass(frozen=True, slots=True)
class ProcessRoles:
    """What this process runs, from the worker options."""

    worker: WorkerConfig
    instance: str

    @classmethod
    def from_config(cls, worker: WorkerConfig, instance: str | None = None) -> ProcessRoles:
        """The roles of ``instance`` (None: the worker options' own instance name)."""
        return cls(worker, worker.instance_name if instance is None else instance)

    @property
    def sends_federation(self) -> bool:
        return self.instance in self.worker.federation_sender_instances

    def sends_to(self, destination: str) -> bool:
        """Whether this process's sender drains ``destination``'s queue."""
        return self.worker.federation_sender_for(destination) == self.instance

    @property
    def runs_pushers(self) -> bool:
        return self.instance in self.worker.pusher_instances

    def pushes_for(self, user_id: str) -> bool:
        """Whether this process runs ``user_id``'s pushers."""
        return self.worker.pusher_for(user_id) == self.instance

    @property
    def runs_background_tasks(self) -> bool:
        return self.worker.run_background_tasks_on == self.instance

    @property
    def runs_media_background_jobs(self) -> bool:
        return (self.worker.media_instance_running_background_jobs or "master") == self.instance

    @property
    def notifies_appservices(self) -> bool:
        return (self.worker.notify_appservices_from_worker or "master") == self.instance

    @property
    def updates_user_directory(self) -> bool:
        return (self.worker.update_user_directory_from_worker or "master") == self.instance

    @property
    def writes_events(self) -> bool:
        return self.instance in self.worker.stream_writers.events


# -- federation ------------------------------------------------------------------------


class FederationShard:
    """The sender's view of the destination shards (``FederationSender.shard``):
    which queues it drains, and the notices that wake the others' senders."""

    def __init__(self, roles: ProcessRoles, publisher: NoticePublisher, clock: Clock) -> None:
        self._roles = roles
        self._publisher = publisher
        self._clock = clock
        self._told_up: dict[str, int] = {}  # destination -> when last told (ms)

    def owns(self, destination: str) -> bool:
        return self._roles.sends_to(destination)

    def queued_elsewhere(self, destinations: Collection[str]) -> None:
        """Items were queued for ``destinations``, which other instances send to."""
        if destinations:
            self._publisher.publish(
                FederationQueued(self._roles.instance, tuple(sorted(destinations)))
            )

    def seen_elsewhere(self, destination: str, *, force: bool = False) -> None:
        """``destination`` is up (it talked to us, or an admin reset its backoff):
        told to its sender at most every ``REMOTE_UP_INTERVAL_MS`` unless ``force``."""
        now = self._clock.time_ms()
        last = self._told_up.get(destination)
        if not force and last is not None and now - last < REMOTE_UP_INTERVAL_MS:
            return
        self._told_up.pop(destination, None)
        self._told_up[destination] = now
        while len(self._told_up) > REMOTE_UP_MEMORY:
            del self._told_up[next(iter(self._told_up))]
        self._publisher.publish(RemoteServerUp(self._roles.instance, (destination,)))


class DestinationWaker(Protocol):  # federation.sender.FederationSender
    def wake(self, destinations: Iterable[str]) -> None: ...

    def resume(self, destination: str) -> None: ...


# -- pushers ---------------------------------------------------------------------------


class PusherWaker(Protocol):  # homeserver.push.pushers.PusherPool
    def on_notified(self, user_ids: set[str]) -> None: ...

    def on_read(self, user_ids: set[str]) -> None: ...


class PushWakePublisher:
    """The evaluator's ``on_notified`` / ``on_read`` callbacks on a process whose
    users' pushers (some of them) run elsewhere: tells the pusher instances."""

    def __init__(self, roles: ProcessRoles, publisher: NoticePublisher) -> None:
        self._roles = roles
        self._publisher = publisher

    def _elsewhere(self, user_ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(u for u in user_ids if not self._roles.pushes_for(u)))

    def on_notified(self, user_ids: set[str]) -> None:
        users = self._elsewhere(user_ids)
        if users:
            self._publisher.publish(PushersWake(self._roles.instance, notified=users))

    def on_read(self, user_ids: set[str]) -> None:
        users = self._elsewhere(user_ids)
        if users:
            self._publisher.publish(PushersWake(self._roles.instance, read=users))


# -- appservices -----------------------------------------------------------------------


class AppServiceWaker(Protocol):  # homeserver.appservice.delivery.AppServiceDelivery
    def wake_all(self) -> None: ...


# -- receiving -------------------------------------------------------------------------


class RoleNotices:
    """Applies the other processes' role notices to this one: queued federation
    work and remote servers seen (for the destinations this sender drains), pusher
    wake-ups (for the users it pushes for), committed events (appservice delivery)."""

    def __init__(
        self,
        roles: ProcessRoles,
        *,
        sender: DestinationWaker | None = None,
        pushers: PusherWaker | None = None,
        appservices: AppServiceWaker | None = None,
    ) -> None:
        self._roles = roles
        self._sender = sender if roles.sends_federation else None
        self._pushers = pushers if roles.runs_pushers else None
        self._appservices = appservices if roles.notifies_appservices else None

    def on_notice(self, notice: Notice) -> None:
        """A notice of another process (those of other kinds are ignored)."""
        if isinstance(notice, FederationQueued):
            if self._sender is not None:
                self._sender.wake(self._mine(notice.destinations))
        elif isinstance(notice, RemoteServerUp):
            if self._sender is not None:
                for destination in self._mine(notice.destinations):
                    self._sender.resume(destination)
        elif isinstance(notice, PushersWake):
            if self._pushers is not None:
                notified = {u for u in notice.notified if self._roles.pushes_for(u)}
                read = {u for u in notice.read if self._roles.pushes_for(u)}
                if notified:
                    self._pushers.on_notified(notified)
                if read:
                    self._pushers.on_read(read)

    def on_room_event(self, notice: RoomEventNotice) -> None:
        """An event another process committed (once readable here)."""
        if self._appservices is not None:
            self._appservices.wake_all()

    def _mine(self, destinations: Iterable[str]) -> list[str]:
        return [d for d in destinations if self._roles.sends_to(d)]
