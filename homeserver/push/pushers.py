"""HTTP pushers (client-server API: Push Notifications, postPusher/getPushers; Push
Gateway API: "Homeserver behaviour").

Each pusher is a persisted queue: its ``last_stream_ordering`` is how far the user's
notifications (``event_push_actions``) were delivered. One task per pusher sends the
user's unread notifications after that position, in order, one POST per event, and
moves the position only after the gateway accepted it. When the gateway fails, the
pusher backs off exponentially (by the injected clock) and retries the same
notification; after failing for a day it skips it, as Synapse does. Pushkeys the
gateway ``rejected`` remove the pusher. At start-up every pusher resumes from its
stored position, so nothing is lost across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yarl import URL

from homeserver.backoff_worker import BackoffWorker
from homeserver.clock import Clock
from homeserver.errors import InvalidParam
from homeserver.metrics.components import PushMetrics
from homeserver.push.gateway import (
    NOTIFY_PATH,
    GatewayError,
    NotificationBuilder,
    PushGatewayClient,
    badge_notification,
)
from homeserver.push.notifications import PushEvaluator
from homeserver.replication.invalidation import PUSHERS, CachePublisher
from homeserver.streams import StreamPositions
from storage.database import Transaction
from storage.pushers import PusherRecord
from storage.stores import Stores

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 3600.0
GIVE_UP_AFTER_MS = 24 * 3600 * 1000
MAX_WAIT_S = 60.0
FETCH_LIMIT = 20
MAX_PUSHKEY_BYTES = 512
MAX_APP_ID_CHARS = 64


@dataclass(frozen=True)
class PusherRequest:
    """A validated postPusher body whose ``kind`` is not null."""

    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    append: bool


def check_pusher_request(request: PusherRequest) -> None:
    """Semantic checks of postPusher (M_INVALID_PARAM)."""
    if len(request.pushkey.encode()) > MAX_PUSHKEY_BYTES:
        raise InvalidParam(f"'pushkey' is longer than {MAX_PUSHKEY_BYTES} bytes")
    if len(request.app_id) > MAX_APP_ID_CHARS:
        raise InvalidParam(f"'app_id' is longer than {MAX_APP_ID_CHARS} characters")
    if request.kind != "http":
        raise InvalidParam(f"Unsupported pusher kind: {request.kind}")
    url = request.data.get("url")
    if not isinstance(url, str):
        raise InvalidParam("'data.url' is required for http pushers")
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise InvalidParam("'data.url' is not a URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidParam("'data.url' must be an http(s) URL")
    if parsed.path != NOTIFY_PATH:
        raise InvalidParam(f"'data.url' must have the path {NOTIFY_PATH}")
    # "event_id_only" is the one format the spec defines; any other is kept as given
    # and gets full notifications (as Synapse treats it)
    if not isinstance(request.data.get("format", ""), str):
        raise InvalidParam("'data.format' must be a string")


def pusher_json(pusher: PusherRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pushkey": pusher.pushkey,
        "kind": pusher.kind,
        "app_id": pusher.app_id,
        "app_display_name": pusher.app_display_name,
        "device_display_name": pusher.device_display_name,
        "lang": pusher.lang,
        "data": pusher.data,
    }
    if pusher.profile_tag is not None:
        body["profile_tag"] = pusher.profile_tag
    return body


class HttpPusher(BackoffWorker):
    """The delivery queue of one pusher."""

    initial_backoff_s = INITIAL_BACKOFF_S
    max_backoff_s = MAX_BACKOFF_S
    max_wait_s = MAX_WAIT_S

    def __init__(self, pool: PusherPool, record: PusherRecord) -> None:
        super().__init__(pool.clock)
        self.record = record
        self._pool = pool
        # the unread count the gateway last heard from us, and whether a read receipt
        # asks to check it again (a badge-only push when it changed, as Synapse sends);
        # badges go out from their own task, so a slow one never holds up the queue
        self.last_badge: int | None = None
        self._badge_due = False
        self._badge_task: asyncio.Task[None] | None = None

    def badge_changed(self) -> None:
        """The user read something: tell the gateway the new unread count."""
        self._badge_due = True
        if self._task is not None and (self._badge_task is None or self._badge_task.done()):
            self._badge_task = asyncio.get_running_loop().create_task(self._send_badges())

    async def _send_badges(self) -> None:
        while self._badge_due and self._task is not None:
            self._badge_due = False
            try:
                await self._update_badge()
            except Exception:
                logger.exception("badge of %s/%s failed", self.record.app_id, self.record.user_id)

    async def stop(self) -> None:
        """Stop at the next safe point (a request to a gateway may be cut short)."""
        badge, self._badge_task = self._badge_task, None
        if badge is not None and badge is not asyncio.current_task() and not badge.done():
            badge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await badge
        await self._stop_task()

    def _describe(self) -> str:
        return f"pusher {self.record.app_id}/{self.record.user_id}"

    async def _step(self) -> bool:
        """Send the next notifications; True when there may be more right away."""
        pool, record = self._pool, self.record
        actions = await pool.stores.push_actions.unread_after(
            record.user_id, record.last_stream_ordering, FETCH_LIMIT
        )
        for action in actions:
            if self._task is None:
                return False  # stopping
            unread = await pool.evaluator.unread_total(record.user_id)
            body = await pool.builder.build(record, action, unread)
            if body is not None:
                try:
                    rejected = await pool.client.notify(record.data["url"], {"notification": body})
                except GatewayError as exc:
                    if pool.metrics is not None:
                        pool.metrics.pushes_failed.inc()
                    if exc.blocked:
                        logger.warning(
                            "push to %s for %s refused: the gateway's address is blocked by"
                            " ip_range_blacklist (add it to ip_range_whitelist to allow it);"
                            " retrying with backoff: %s",
                            record.data.get("url"),
                            record.user_id,
                            exc,
                        )
                    else:
                        logger.info("push to %s failed: %s", record.data.get("url"), exc)
                    if self._give_up():
                        await self._advance(action.stream_ordering)
                        continue
                    self._fail()
                    await pool.stores.pushers.set_delivery_state(
                        record.key, record.last_stream_ordering, record.failing_since_ms
                    )
                    return False
                if pool.metrics is not None:
                    pool.metrics.pushes_processed.inc()
                if record.pushkey in rejected:
                    logger.info("gateway rejected pushkey of %s; removing pusher", record.user_id)
                    await pool.remove(record.user_id, record.app_id, record.pushkey)
                    return False
                self.last_badge = unread
            await self._advance(action.stream_ordering)
        return len(actions) == FETCH_LIMIT

    async def _update_badge(self) -> None:
        """Send the unread count alone when it differs from the last one sent. Best
        effort: a failure is logged, not retried (the next push carries the count)."""
        pool, record = self._pool, self.record
        unread = await pool.evaluator.unread_total(record.user_id)
        if unread == self.last_badge:
            return
        try:
            rejected = await pool.client.notify(
                record.data["url"], {"notification": badge_notification(record, unread)}
            )
        except GatewayError as exc:
            if pool.metrics is not None:
                pool.metrics.badge_updates_failed.inc()
            logger.info("badge update to %s failed: %s", record.data.get("url"), exc)
            return
        if pool.metrics is not None:
            pool.metrics.badge_updates_processed.inc()
        if record.pushkey in rejected:
            logger.info("gateway rejected pushkey of %s; removing pusher", record.user_id)
            await pool.remove(record.user_id, record.app_id, record.pushkey)
            return
        self.last_badge = unread

    def _fail(self) -> None:
        super()._fail()
        if self.record.failing_since_ms is None:
            self.record = _with(self.record, failing_since_ms=self._pool.clock.time_ms())

    def _give_up(self) -> bool:
        since = self.record.failing_since_ms
        return since is not None and self._pool.clock.time_ms() - since > GIVE_UP_AFTER_MS

    async def _advance(self, position: int) -> None:
        self.record = _with(self.record, last_stream_ordering=position, failing_since_ms=None)
        self._succeeded()
        await self._pool.stores.pushers.set_delivery_state(self.record.key, position, None)


def _with(record: PusherRecord, **changes: Any) -> PusherRecord:
    from dataclasses import replace

    return replace(record, **changes)


class PusherPool:
    """Every pusher of this server and its delivery task."""

    def __init__(
        self,
        stores: Stores,
        clock: Clock,
        evaluator: PushEvaluator,
        client: PushGatewayClient,
        builder: NotificationBuilder,
        events_stream: StreamPositions,
        *,
        cache_publisher: CachePublisher | None = None,
    ) -> None:
        self.stores = stores
        self.clock = clock
        self.evaluator = evaluator
        # tells the other processes (the pusher instance) whose pushers changed
        self._cache_publisher = cache_publisher or CachePublisher()
        self.client = client
        self.builder = builder
        self._stream = events_stream
        self._pushers: dict[tuple[str, str, str], HttpPusher] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._running = False
        self.metrics: PushMetrics | None = None
        # with workers: whether this process runs a user's pushers (None: every user's)
        self.owns: Callable[[str], bool] | None = None
        evaluator.on_notified.append(self.on_notified)
        evaluator.on_read.append(self.on_read)

    def use_metrics(self, metrics: PushMetrics) -> None:
        """Count pushes into ``metrics``, and report the running pushers there."""
        self.metrics = metrics
        metrics.count_pushers = self.count_by_app

    def count_by_app(self) -> dict[tuple[str, str], int]:
        """(kind, app_id) -> running pushers (Synapse's ``synapse_pushers`` labels)."""
        counts: dict[tuple[str, str], int] = {}
        for pusher in self._pushers.values():
            key = (pusher.record.kind, pusher.record.app_id)
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def start(self) -> None:
        """Load every pusher and resume its queue from the stored position."""
        if self._running:
            return
        self._running = True
        for record in await self.stores.pushers.all_pushers():
            if self._owns(record.user_id):
                self._add(record)

    async def stop(self) -> None:
        self._running = False
        pushers, self._pushers = list(self._pushers.values()), {}
        for pusher in pushers:
            await pusher.stop()
        if self._stopping:
            await asyncio.gather(*self._stopping)
        await self.client.close()

    def _owns(self, user_id: str) -> bool:
        return self.owns is None or self.owns(user_id)

    def _add(self, record: PusherRecord) -> None:
        if not self._owns(record.user_id):
            return  # another instance runs the user's pushers
        old = self._pushers.get(record.key)
        if old is not None:
            # the stored row may not have caught up with what the queue just delivered
            delivered = old.record.last_stream_ordering
            if delivered > record.last_stream_ordering:
                record = _with(record, last_stream_ordering=delivered)
            old.record = record
            old.wake()
            return
        pusher = HttpPusher(self, record)
        self._pushers[record.key] = pusher
        if self._running:
            pusher.start()

    def on_notified(self, user_ids: set[str]) -> None:
        for key, pusher in self._pushers.items():
            if key[0] in user_ids:
                pusher.wake()

    def on_read(self, user_ids: set[str]) -> None:
        for key, pusher in self._pushers.items():
            if key[0] in user_ids:
                pusher.badge_changed()

    def wake_all(self) -> None:
        """Re-check every queue now (after the clock moved, in tests)."""
        for pusher in self._pushers.values():
            pusher.wake()

    def pusher(self, user_id: str, app_id: str, pushkey: str) -> HttpPusher | None:
        return self._pushers.get((user_id, app_id, pushkey))

    # -- the API -----------------------------------------------------------------------------

    async def get_pushers(self, user_id: str) -> list[PusherRecord]:
        return await self.stores.pushers.get_pushers(user_id)

    async def set_pusher(self, user_id: str, device_id: str | None, request: PusherRequest) -> None:
        check_pusher_request(request)
        if self.client.blocked_literal(request.data["url"]):
            # Never deliverable under this configuration: say so now rather than retry
            # for a day. (A host name is resolved, and checked, at each delivery.)
            raise InvalidParam("'data.url' is an address this server may not reach")
        record = PusherRecord(
            user_id=user_id,
            app_id=request.app_id,
            pushkey=request.pushkey,
            kind=request.kind,
            device_id=device_id,
            app_display_name=request.app_display_name,
            device_display_name=request.device_display_name,
            profile_tag=request.profile_tag,
            lang=request.lang,
            data=request.data,
            pushkey_ts=self.clock.time_ms() // 1000,
            # a new pusher delivers what is notified from now on
            last_stream_ordering=self._stream.current(),
        )
        stored, *removed = await self.stores.pushers.upsert_pusher(
            record, remove_others=not request.append
        )
        for other in removed:
            await self._drop(other.key)
        self._add(stored)
        self._cache_publisher.stale(PUSHERS, [user_id])

    async def reload_user(self, user_id: str) -> None:
        """Another process set or removed pushers of the user: run what is stored
        (if this process runs the user's pushers)."""
        if not self._owns(user_id):
            return
        stored = {r.key: r for r in await self.stores.pushers.get_pushers(user_id)}
        for key in [k for k in self._pushers if k[0] == user_id and k not in stored]:
            await self._drop(key)
        for record in stored.values():
            self._add(record)

    async def reload_all(self) -> None:
        """Notices from the other processes may have been missed: run exactly the
        pushers stored (each user's, as :meth:`reload_user`)."""
        stored = {r.key: r for r in await self.stores.pushers.all_pushers()}
        for key in [k for k in self._pushers if k not in stored]:
            await self._drop(key)
        for record in stored.values():
            self._add(record)

    async def on_devices_removed_txn(
        self, txn: Transaction, user_id: str, device_ids: list[str]
    ) -> None:
        """``SessionService.device_removed_hooks`` entry: the pushers a device set go
        with it (as Synapse removes them), in the same transaction — on logout, device
        deletion, a password change that logs the other devices out, deactivation."""
        keys = await self.stores.pushers.delete_device_pushers_txn(txn, user_id, device_ids)
        if keys:
            txn.call_after_commit(lambda: self._stop_soon(keys))
            txn.call_after_commit(lambda: self._cache_publisher.stale(PUSHERS, [user_id]))

    def _stop_soon(self, keys: list[tuple[str, str, str]]) -> None:
        """Stop the queues of deleted pushers (from a synchronous after-commit hook)."""
        loop = asyncio.get_running_loop()
        for key in keys:
            pusher = self._pushers.pop(key, None)
            if pusher is not None:
                task = loop.create_task(pusher.stop())
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    async def remove_all(self, user_id: str) -> None:
        """Delete every pusher of the user (a deactivated account)."""
        for record in await self.stores.pushers.get_pushers(user_id):
            await self.remove(user_id, record.app_id, record.pushkey)

    async def remove(self, user_id: str, app_id: str, pushkey: str) -> None:
        await self.stores.pushers.delete_pusher(user_id, app_id, pushkey)
        await self._drop((user_id, app_id, pushkey))
        self._cache_publisher.stale(PUSHERS, [user_id])

    async def _drop(self, key: tuple[str, str, str]) -> None:
        pusher = self._pushers.pop(key, None)
        if pusher is None:
            return
        if pusher._task is asyncio.current_task():
            pusher._task = None  # the pusher removes itself: its loop ends
        else:
            await pusher.stop()
