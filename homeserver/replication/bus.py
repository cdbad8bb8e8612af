"""The processes of one homeserver tell each other about new data over Redis pub/sub.

``RedisBus`` is one process's end: one channel per homeserver
(``homeserver.replication.<server_name>``), every process publishing and subscribed.
Notices are fire-and-forget: Redis pub/sub keeps nothing for a subscriber that is
away. What makes that safe is the reconnect path: after every (re)subscribe the
``on_reconnect`` callbacks run before any notice is dispatched, and they re-read
every stream's positions from the database (``positions.py``), which is where the
truth lives; a notice is only ever a hint that the truth has moved.

The bus keeps its own two connections: one subscribed (Redis allows nothing else on
it) and one pooled for publishing. Neither retries on its own (redis-py's default is
to reconnect, and even re-subscribe, silently): every failure reaches the bus, which
reconnects after a capped, doubling backoff and runs the callbacks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from homeserver.config.sections import RedisConfig
from homeserver.replication.notices import Notice, NoticeHandler, decode_notice, encode_notice

logger = logging.getLogger(__name__)

ReconnectCallback = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

CHANNEL_PREFIX = "homeserver.replication."


def _str_tuple(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, str) for v in value)


# The field types a notice may carry (notices.py's annotations), checked on receipt:
# the wire form comes from another process, and a bad one must not reach a handler.
_CHECKS: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "str | None": lambda v: v is None or isinstance(v, str),
    "tuple[str, ...]": _str_tuple,
    "dict[str, Any] | None": lambda v: v is None or isinstance(v, dict),
}


def parse_notice(payload: bytes) -> Notice:
    """The notice of a payload from another process, every field of its declared
    type; ValueError for anything else."""
    notice = decode_notice(payload)
    body = orjson.loads(payload)  # the wire form, before decode_notice made tuples
    for field in fields(notice):
        value = getattr(notice, field.name)
        kind = str(field.type)
        check = _CHECKS.get(kind)
        if (check is not None and not check(value)) or (
            kind.startswith("tuple[")
            and field.name in body
            and not isinstance(body[field.name], list)
        ):
            raise ValueError(f"{field.name} of the wrong type in {payload[:80]!r}")
    return notice


def _raise_if_cancelled() -> None:
    """Raise CancelledError if this task is being cancelled: redis-py, cancelled
    during some of its awaits, tidies up and returns (or raises another error)
    instead of letting the cancellation through."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisBus:
    """Publishes this process's notices and hands the others' to the subscribers.

    ``publish`` never blocks nor raises: notices are queued and sent in order by one
    task. While Redis is away they are dropped (and counted in ``dropped``): the
    readers re-read positions from the database when they reconnect, so no position
    is lost, and the lead's ``on_resync`` handling re-reads what may have been missed.
    """

    backoff_initial_s = 0.1
    backoff_max_s = 5.0
    # with nothing received for this long, ping; with still nothing after as long
    # again, the connection is taken for dead
    idle_ping_s = 10.0
    connect_timeout_s = 5.0
    backlog_warning = 10_000

    def __init__(
        self,
        config: RedisConfig,
        server_name: str,
        instance_name: str,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._config = config
        self.channel = CHANNEL_PREFIX + server_name
        self.instance_name = instance_name
        self._sleep = sleep
        self._handlers: list[NoticeHandler] = []
        self._reconnect_callbacks: list[ReconnectCallback] = []
        self._outbox: deque[bytes] = deque()
        self._outbox_ready = asyncio.Event()
        self._subscribed = False  # publishing allowed
        self._ready = asyncio.Event()  # subscribed, and the callbacks have run
        self._client: Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._warned_backlog = False
        self.dropped = 0  # notices dropped while disconnected
        self.connections = 0  # successful (re)subscribes so far

    # -- the surface ------------------------------------------------------------------

    def subscribe(self, handler: NoticeHandler) -> None:
        """Call ``handler`` with every notice of the other processes, in order."""
        self._handlers.append(handler)

    def on_reconnect(self, callback: ReconnectCallback) -> None:
        """Await ``callback`` after every (re)subscribe, before notices flow again. A
        callback that raises counts as a failed connection: the bus reconnects after
        its backoff and calls it again."""
        self._reconnect_callbacks.append(callback)

    def publish(self, notice: Notice) -> None:
        if not self._subscribed:
            # Nobody would hear it. Nothing is lost: every process re-reads the
            # positions from the database once it is connected again.
            self.dropped += 1
            return
        try:
            payload = encode_notice(notice)
        except Exception:
            logger.exception("cannot encode notice %r", notice)
            return
        self._outbox.append(payload)
        if len(self._outbox) > self.backlog_warning and not self._warned_backlog:
            self._warned_backlog = True
            logger.warning("replication: %d notices waiting for Redis", len(self._outbox))
        self._outbox_ready.set()

    @property
    def connected(self) -> bool:
        """Subscribed, and the reconnect callbacks have run."""
        return self._ready.is_set()

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Return once ``connected`` (TimeoutError after ``timeout_s``)."""
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    async def start(self) -> None:
        if self._reader is not None:
            return
        config = self._config
        self._client = Redis(
            host=config.host,
            port=config.port,
            password=config.password,
            db=getattr(config, "dbid", None) or 0,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.connect_timeout_s,
            socket_keepalive=True,
        )
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_forever(), name="redis bus reader")
        self._sender = loop.create_task(self._send_forever(), name="redis bus sender")

    async def stop(self) -> None:
        tasks = [t for t in (self._reader, self._sender) if t is not None]
        self._reader = self._sender = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- receiving --------------------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._client is not None
        attempt = 0
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._confirmed(pubsub)
                self._subscribed = True
                for callback in self._reconnect_callbacks:
                    await callback()
                self._ready.set()
                self.connections += 1
                if attempt:
                    logger.info("replication: Redis is back (%s)", self.channel)
                attempt = 0
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _raise_if_cancelled()
                # a dead connection, or a reconnect callback that failed
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                logger.log(level, "replication: Redis connection lost: %s", exc)
            finally:
                self._subscribed = False
                self._ready.clear()
                self._outbox.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                # the publishing connections may be dead too: start them afresh
                with contextlib.suppress(Exception):
                    await self._client.connection_pool.disconnect()
            delay = min(self.backoff_initial_s * 2**attempt, self.backoff_max_s)
            attempt += 1
            await self._sleep(delay)

    async def _confirmed(self, pubsub: Any) -> None:
        """Wait for Redis to confirm the subscription: only then is every later
        notice certain to reach us."""
        while True:
            message = await pubsub.get_message(timeout=self.idle_ping_s)
            if message is None:
                raise ConnectionError("Redis did not confirm the subscription")
            if message["type"] == "subscribe":
                return

    async def _read(self, pubsub: Any) -> None:
        silent = 0
        while True:
            message = await pubsub.get_message(timeout=self.idle_ping_s)
            _raise_if_cancelled()
            if message is None:
                silent += 1
                if silent > 1:
                    raise ConnectionError("Redis does not answer")
                await pubsub.ping()
                continue
            silent = 0
            if message["type"] == "message":
                await self._dispatch(message["data"])

    async def _dispatch(self, payload: bytes) -> None:
        try:
            notice = parse_notice(payload)
        except ValueError as exc:
            logger.warning("replication: ignoring a bad notice on %s: %s", self.channel, exc)
            return
        if notice.instance == self.instance_name:
            return  # our own, back from Redis
        for handler in self._handlers:
            try:
                result = handler(notice)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("replication: a handler failed on %r", notice)

    # -- sending ----------------------------------------------------------------------

    async def _send_forever(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = list(self._outbox)
                self._outbox.clear()
                self._warned_backlog = False
                await self._send(batch)
                _raise_if_cancelled()

    async def _send(self, batch: list[bytes]) -> None:
        if not self._subscribed or self._client is None:
            self.dropped += len(batch)
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for payload in batch:
                    pipe.publish(self.channel, payload)
                await pipe.execute()
        except Exception as exc:
            # Dropped like any notice sent while Redis is away; reconnecting makes
            # this process resync and publish its positions again.
            self.dropped += len(batch)
            logger.warning("replication: publishing to Redis failed: %s", exc)
            lost = isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError))
            if lost and self._subscribed:  # (else the reader is reconnecting already)
                self._restart_reader()

    def _restart_reader(self) -> None:
        if self._reader is None:
            return
        self._subscribed = False
        self._reader.cancel()
        self._reader = asyncio.get_running_loop().create_task(
            self._reconnect_after_failure(self._reader), name="redis bus reader"
        )

    async def _reconnect_after_failure(self, old: asyncio.Task[None]) -> None:
        await asyncio.wait([old])
        delay = self.backoff_initial_s
        await self._sleep(delay)
        await self._read_forever()
