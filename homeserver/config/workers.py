"""Workers: which process this is, and which process does what (Synapse's options).

One homeserver may run as several processes sharing one PostgreSQL database and one
Redis: the main process (instance ``"master"``, written ``main`` in ``instance_map``)
and workers (``worker_app: synapse.app.generic_worker`` with a ``worker_name``). Every
process reads the same shared file plus its own; `WorkerConfig` says which process
this one is, where the others listen for replication requests (``instance_map``),
which instances write each stream (``stream_writers``) and which run the jobs that
must run once (federation sending, pushers, background tasks ...).

A process with no worker options is the single main process: it writes every stream
and runs every job, as before.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from homeserver.config._reader import (
    Invalid,
    Reader,
    describe,
    to_bool,
    to_nonempty_str,
    to_path,
    to_port,
    to_str,
)

MAIN_INSTANCE: Final = "master"  # the main process in stream_writers and duty options
MAIN_INSTANCE_MAP_NAME: Final = "main"  # the main process in instance_map

WorkerApp = Literal["main", "generic_worker"]
MAIN_APP: Final = "synapse.app.homeserver"
GENERIC_WORKER_APP: Final = "synapse.app.generic_worker"
# Synapse's specialised worker apps, deprecated there in favour of generic_worker,
# which does what each of them did.
LEGACY_WORKER_APPS: Final = frozenset(
    {
        "synapse.app.appservice",
        "synapse.app.client_reader",
        "synapse.app.event_creator",
        "synapse.app.federation_reader",
        "synapse.app.federation_sender",
        "synapse.app.frontend_proxy",
        "synapse.app.media_repository",
        "synapse.app.pusher",
        "synapse.app.synchrotron",
        "synapse.app.user_dir",
    }
)

STREAMS: Final = (
    "events",
    "typing",
    "to_device",
    "account_data",
    "receipts",
    "presence",
    "push_rules",
    "device_lists",
)
# Streams Synapse lets several instances write; this server allows it for events only.
_SYNAPSE_MULTI_WRITER: Final = frozenset({"receipts", "device_lists"})

_INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


def _to_instance_name(value: object) -> str:
    """A process name: letters, digits, ``_``, ``.``, ``-`` (it names files, Redis
    channels and log lines)."""
    text = to_str(value)
    if not _INSTANCE_NAME.fullmatch(text):
        raise Invalid(
            f"expected an instance name of letters, digits, '_', '.' and '-', got {describe(value)}"
        )
    return text


def _to_worker_name(value: object) -> str:
    name = _to_instance_name(value)
    if name in (MAIN_INSTANCE, MAIN_INSTANCE_MAP_NAME):
        raise Invalid(f'"{name}" is the main process\'s name; choose another worker_name')
    return name


def _to_instances(value: object) -> tuple[str, ...]:
    """One instance name or a list of them (as Synapse reads stream_writers)."""
    if isinstance(value, str):
        return (_to_instance_name(value),)
    if not isinstance(value, list):
        raise Invalid(f"expected an instance name or a list of them, got {describe(value)}")
    names: list[str] = []
    for index, item in enumerate(value):
        try:
            name = _to_instance_name(item)
        except Invalid as invalid:
            raise Invalid(invalid.message, f"[{index}]") from None
        if name in names:
            raise Invalid(f'"{name}" is listed twice', f"[{index}]")
        names.append(name)
    return tuple(names)


def _to_worker_app(value: object) -> WorkerApp:
    text = to_str(value)
    if text == MAIN_APP:
        return "main"
    if text == GENERIC_WORKER_APP or text in LEGACY_WORKER_APPS:
        return "generic_worker"
    raise Invalid(f'expected "{GENERIC_WORKER_APP}" or "{MAIN_APP}", got {describe(value)}')


def is_worker_app(value: object) -> bool | None:
    """Whether ``worker_app`` names a worker (None: it names nothing known)."""
    try:
        return _to_worker_app(value) == "generic_worker"
    except Invalid:
        return None


def room_writer_index(room_id: str, writers: int) -> int:
    """The index of a room's event writer among `writers` of them: nginx's ``hash``
    (non-consistent, the Cache::Memcached formula over CRC-32), so that an nginx
    upstream ``hash $room_id;`` over the writers in the same order sends a room's
    events straight to its writer. The same in every process and every run."""
    return ((zlib.crc32(room_id.encode("utf-8")) >> 16) & 0x7FFF) % writers


def shard_for(instances: tuple[str, ...], key: str) -> str | None:
    """The instance of `instances` that handles `key` (a room ID, a destination, a
    user ID): the same in every process and every run (CRC-32, not ``hash()``)."""
    if not instances:
        return None
    return instances[zlib.crc32(key.encode("utf-8")) % len(instances)]


@dataclass(frozen=True, slots=True)
class InstanceLocation:
    """Where an instance serves its ``replication`` resource (``instance_map.<name>``)."""

    host: str
    port: int
    tls: bool = False

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @staticmethod
    def parse(reader: Reader) -> InstanceLocation:
        if reader.raw("path") is not None:
            reader.error("path", "Unix socket addresses are not supported; give host and port")
        host = reader.require("host", to_nonempty_str) or "localhost"
        port = reader.require("port", to_port) or 1
        tls = reader.get("tls", to_bool, False)
        reader.finish()
        return InstanceLocation(host=host, port=port, tls=tls)


_MAIN_ONLY: Final[tuple[str, ...]] = (MAIN_INSTANCE,)


@dataclass(frozen=True, slots=True)
class StreamWriters:
    """``stream_writers``: the instances that write each stream (default: the main
    process). Events may have several writers (rooms are shared out among them by
    room ID); every other stream has exactly one."""

    events: tuple[str, ...] = _MAIN_ONLY
    typing: tuple[str, ...] = _MAIN_ONLY
    to_device: tuple[str, ...] = _MAIN_ONLY
    account_data: tuple[str, ...] = _MAIN_ONLY
    receipts: tuple[str, ...] = _MAIN_ONLY
    presence: tuple[str, ...] = _MAIN_ONLY
    push_rules: tuple[str, ...] = _MAIN_ONLY
    device_lists: tuple[str, ...] = _MAIN_ONLY

    def writers(self, stream: str) -> tuple[str, ...]:
        """The writers of `stream` (one of `STREAMS`); KeyError for another name."""
        if stream not in STREAMS:
            raise KeyError(f"unknown stream {stream!r}")
        writers: tuple[str, ...] = getattr(self, stream)
        return writers

    def instances(self) -> frozenset[str]:
        """Every instance that writes some stream."""
        return frozenset(name for stream in STREAMS for name in self.writers(stream))

    @staticmethod
    def parse(reader: Reader) -> StreamWriters:
        values: dict[str, tuple[str, ...]] = {}
        for stream in STREAMS:
            writers = reader.get(stream, _to_instances, _MAIN_ONLY)
            if reader.raw(stream) == []:
                reader.error(stream, "at least one writer is required")
                writers = _MAIN_ONLY
            if stream != "events" and len(writers) > 1:
                if stream in _SYNAPSE_MULTI_WRITER:
                    why = f"this server supports one writer for {stream} (Synapse allows several)"
                else:
                    why = f"{stream} has exactly one writer (as in Synapse)"
                reader.error(stream, f"{why}; got {len(writers)}")
                writers = writers[:1]
            values[stream] = writers
        reader.finish()
        return StreamWriters(**values)


def _no_locations() -> Mapping[str, InstanceLocation]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Which process this is and who does what. The default is the single main
    process, which writes every stream and runs every job."""

    app: WorkerApp = "main"
    instance_name: str = MAIN_INSTANCE  # worker_name on a worker
    instance_map: Mapping[str, InstanceLocation] = field(default_factory=_no_locations)
    stream_writers: StreamWriters = field(default_factory=StreamWriters)
    federation_sender_instances: tuple[str, ...] = _MAIN_ONLY
    pusher_instances: tuple[str, ...] = _MAIN_ONLY
    run_background_tasks_on: str = MAIN_INSTANCE
    # None: the main process (Synapse: whichever single instance serves media)
    media_instance_running_background_jobs: str | None = None
    # None: the main process
    notify_appservices_from_worker: str | None = None
    update_user_directory_from_worker: str | None = None
    replication_secret: str | None = field(default=None, repr=False)
    log_config: Path | None = None  # worker_log_config

    @property
    def is_main(self) -> bool:
        return self.app == "main"

    @property
    def is_worker(self) -> bool:
        return self.app == "generic_worker"

    @property
    def named_instances(self) -> frozenset[str]:
        """Every instance the options name, the main process as ``"master"``."""
        names = {self.instance_name, self.run_background_tasks_on}
        names |= {MAIN_INSTANCE if n == MAIN_INSTANCE_MAP_NAME else n for n in self.instance_map}
        names |= self.stream_writers.instances()
        names |= set(self.federation_sender_instances) | set(self.pusher_instances)
        for duty in (
            self.media_instance_running_background_jobs,
            self.notify_appservices_from_worker,
            self.update_user_directory_from_worker,
        ):
            if duty is not None:
                names.add(duty)
        return frozenset(names)

    @property
    def multi_process(self) -> bool:
        """Whether other processes share this homeserver's database (so positions,
        caches and wake-ups go through PostgreSQL and Redis)."""
        return self.is_worker or self.named_instances != {MAIN_INSTANCE}

    def location(self, instance: str) -> InstanceLocation:
        """Where `instance` serves replication; ``"master"`` is ``instance_map.main``.
        KeyError if it is not in ``instance_map``."""
        key = MAIN_INSTANCE_MAP_NAME if instance == MAIN_INSTANCE else instance
        try:
            return self.instance_map[key]
        except KeyError:
            raise KeyError(f"instance {instance!r} is not in instance_map") from None

    def writes(self, stream: str) -> bool:
        """Whether this process writes `stream`."""
        return self.instance_name in self.stream_writers.writers(stream)

    def events_writer_for(self, room_id: str) -> str:
        """The event writer of the room: `room_writer_index` over the writers."""
        writers = self.stream_writers.events
        return writers[room_writer_index(room_id, len(writers))]

    def federation_sender_for(self, destination: str) -> str | None:
        """The instance that sends to `destination` (None: no known instance does)."""
        return shard_for(self.federation_sender_instances, destination)

    def pusher_for(self, user_id: str) -> str | None:
        """The instance that runs the pushers of `user_id` (None: no known instance)."""
        return shard_for(self.pusher_instances, user_id)

    @property
    def sends_federation(self) -> bool:
        """Whether this process sends to some remote servers (its share of them)."""
        return self.instance_name in self.federation_sender_instances

    @property
    def runs_pushers(self) -> bool:
        return self.instance_name in self.pusher_instances

    @property
    def runs_background_tasks(self) -> bool:
        return self.run_background_tasks_on == self.instance_name

    @property
    def runs_media_background_jobs(self) -> bool:
        return (self.media_instance_running_background_jobs or MAIN_INSTANCE) == (
            self.instance_name
        )

    @property
    def notifies_appservices(self) -> bool:
        return (self.notify_appservices_from_worker or MAIN_INSTANCE) == self.instance_name

    @property
    def updates_user_directory(self) -> bool:
        return (self.update_user_directory_from_worker or MAIN_INSTANCE) == self.instance_name

    @staticmethod
    def parse(reader: Reader, *, postgres: bool, redis_enabled: bool) -> WorkerConfig:
        """Read the worker options of the top-level mapping (merged from every
        ``--config`` file); errors are recorded in `reader.errors`."""
        return _WorkerOptions(reader).parse(postgres=postgres, redis_enabled=redis_enabled)


# Synapse's options for reaching the main process before instance_map.main existed
_REMOVED_REPLICATION_OPTIONS: Final = (
    "worker_replication_host",
    "worker_replication_port",
    "worker_replication_http_port",
    "worker_replication_http_tls",
)


class _WorkerOptions:
    """Reads and cross-checks the top-level worker options."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def parse(self, *, postgres: bool, redis_enabled: bool) -> WorkerConfig:
        reader = self.reader
        raw_app = reader.raw("worker_app")
        app: WorkerApp = reader.get("worker_app", _to_worker_app, "main")
        app_known = raw_app is None or is_worker_app(raw_app) is not None
        name = reader.optional("worker_name", _to_worker_name)
        if app == "generic_worker" and name is None and not reader.has("worker_name"):
            reader.error("worker_name", f"required for a worker (worker_app: {raw_app})")
        if app == "main" and app_known and name is not None:
            reader.error(
                "worker_name",
                f"only a worker has a name (worker_app: {GENERIC_WORKER_APP}); "
                'the main process is "master"',
            )
        instance_name = name if app == "generic_worker" and name is not None else MAIN_INSTANCE
        for removed in _REMOVED_REPLICATION_OPTIONS:
            if reader.raw(removed) is not None:
                reader.error(
                    removed,
                    "no longer supported (as in Synapse): give the main process's "
                    "replication host and port as instance_map.main in the shared config",
                )
        if reader.raw("worker_main_http_uri") is not None:
            reader.warnings.append("worker_main_http_uri: unused (as in Synapse); ignored")

        legacy_app = raw_app if isinstance(raw_app, str) else None
        config = WorkerConfig(
            app=app,
            instance_name=instance_name,
            instance_map=self._instance_map(),
            stream_writers=StreamWriters.parse(reader.child("stream_writers")),
            federation_sender_instances=self._sharded_duty(
                "federation_sender_instances",
                "send_federation",
                "synapse.app.federation_sender",
                legacy_app,
                instance_name,
            ),
            pusher_instances=self._sharded_duty(
                "pusher_instances", "start_pushers", "synapse.app.pusher", legacy_app, instance_name
            ),
            run_background_tasks_on=reader.get(
                "run_background_tasks_on", _to_instance_name, MAIN_INSTANCE
            ),
            media_instance_running_background_jobs=reader.optional(
                "media_instance_running_background_jobs", _to_instance_name
            ),
            notify_appservices_from_worker=reader.optional(
                "notify_appservices_from_worker", _to_instance_name
            ),
            update_user_directory_from_worker=reader.optional(
                "update_user_directory_from_worker", _to_instance_name
            ),
            replication_secret=self._replication_secret(),
            log_config=reader.optional("worker_log_config", to_path),
        )
        self._check(config, postgres=postgres, redis_enabled=redis_enabled)
        return config

    def _instance_map(self) -> Mapping[str, InstanceLocation]:
        section = self.reader.child("instance_map")
        locations: dict[str, InstanceLocation] = {}
        for key in section.keys():
            try:
                name = _to_instance_name(key)
            except Invalid as invalid:
                section.error(key, invalid.message)
                section.raw(key)
                continue
            if name == MAIN_INSTANCE:  # Synapse < 1.84 wrote the main process so
                name = MAIN_INSTANCE_MAP_NAME
                if section.has(MAIN_INSTANCE_MAP_NAME):
                    section.error(key, 'give the main process once, as "main"')
            locations[name] = InstanceLocation.parse(section.child(key))
        return MappingProxyType(locations)

    def _sharded_duty(
        self,
        key: str,
        legacy_key: str,
        legacy_app: str,
        worker_app: str | None,
        instance_name: str,
    ) -> tuple[str, ...]:
        """``federation_sender_instances`` / ``pusher_instances``, or, when absent,
        what Synapse's older ``send_federation`` / ``start_pushers`` boolean and
        specialised worker app mean: false hands the duty to the worker of that app."""
        reader = self.reader
        legacy = reader.get(legacy_key, to_bool, True)
        instances = reader.optional(key, _to_instances)
        if reader.raw(key) == []:
            reader.error(key, "at least one instance is required")
            instances = None
        if instances is not None:
            return instances
        if worker_app == legacy_app:
            if legacy:
                reader.error(
                    legacy_key,
                    f"must be false in the shared config for a {legacy_app} worker "
                    f"(or list the worker in {key})",
                )
            return (instance_name,)
        return _MAIN_ONLY if legacy else ()

    def _replication_secret(self) -> str | None:
        reader = self.reader
        secret = reader.optional("worker_replication_secret", to_nonempty_str)
        secret_path = reader.optional("worker_replication_secret_path", to_path)
        if secret_path is None:
            return secret
        if secret is not None:
            reader.error(
                "worker_replication_secret_path",
                "give either worker_replication_secret or worker_replication_secret_path",
            )
            return secret
        try:
            text = secret_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reader.error("worker_replication_secret_path", f"cannot read {secret_path}: {error}")
            return None
        if not text:
            reader.error("worker_replication_secret_path", f"{secret_path} is empty")
            return None
        return text

    def _check(self, config: WorkerConfig, *, postgres: bool, redis_enabled: bool) -> None:
        reader = self.reader
        trigger = _multi_process_key(config)
        if trigger is not None:
            if not postgres:
                reader.errors.append(
                    f"{trigger}: workers need PostgreSQL: SQLite is single-process; "
                    "set database.name: psycopg (or HOMESERVER_DATABASE_URL)"
                )
            if not redis_enabled:
                reader.errors.append(f"{trigger}: workers need Redis: set redis.enabled: true")
        if config.is_worker and MAIN_INSTANCE_MAP_NAME not in config.instance_map:
            reader.error(
                "instance_map",
                "a worker needs the main process's replication address as instance_map.main",
            )
        for stream in STREAMS:
            for writer in config.stream_writers.writers(stream):
                if writer != MAIN_INSTANCE and writer not in config.instance_map:
                    reader.errors.append(
                        f'stream_writers.{stream}: "{writer}" is not in instance_map '
                        "(a stream writer must be reachable at its replication address)"
                    )


def _multi_process_key(config: WorkerConfig) -> str | None:
    """The option that makes this homeserver several processes, if any."""
    if config.is_worker:
        return "worker_app"
    for name in config.instance_map:
        if name != MAIN_INSTANCE_MAP_NAME:
            return f"instance_map.{name}"
    for stream in STREAMS:
        if config.stream_writers.writers(stream) != _MAIN_ONLY:
            return f"stream_writers.{stream}"
    duties: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("federation_sender_instances", config.federation_sender_instances),
        ("pusher_instances", config.pusher_instances),
        ("run_background_tasks_on", (config.run_background_tasks_on,)),
        (
            "media_instance_running_background_jobs",
            (config.media_instance_running_background_jobs or MAIN_INSTANCE,),
        ),
        (
            "notify_appservices_from_worker",
            (config.notify_appservices_from_worker or MAIN_INSTANCE,),
        ),
        (
            "update_user_directory_from_worker",
            (config.update_user_directory_from_worker or MAIN_INSTANCE,),
        ),
    )
    for key, instances in duties:
        if any(instance != MAIN_INSTANCE for instance in instances):
            return key
    return None
