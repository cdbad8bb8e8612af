"""The plan of a deployment with workers: which processes, with which roles, on which ports.

``--workers events=2,sync=2,client=1`` asks for two event writers, two sync workers
and a client reader; ``events+sync=2`` for two processes that are both. Each process
is named after its roles and number (``events1``, ``events_sync2``) and listens on
one internal port of 127.0.0.1 for everything the proxy sends it and for
replication; the main process takes the first port.

`WorkersPlan.shared_options` gives the worker options every process reads
(``instance_map``, ``stream_writers``, the duty options ...), in Synapse's names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

# Roles a worker can hold, with what the proxy sends it or what it runs.
ROLES: Final = (
    "events",  # writes room events (stream_writers.events); rooms shared out by room ID
    "sync",  # /sync, /events, initialSync, sliding sync: sticky by access token
    "client",  # client reads: messages, context, state, members, profile, keys ...
    "federation_inbound",  # /_matrix/federation and /_matrix/key
    "federation_sender",  # sends to other servers (federation_sender_instances)
    "media",  # the media repository
    "pusher",  # push notifications (pusher_instances)
    "background",  # run_background_tasks_on, update_user_directory_from_worker
    "typing",  # stream writers of one stream each, with its endpoints
    "to_device",
    "account_data",
    "receipts",
    "presence",
)
# Streams of exactly one writer, whose writer a role names.
SINGLE_WRITER_ROLES: Final = ("typing", "to_device", "account_data", "receipts", "presence")
SINGLE_PROCESS_ROLES: Final = (*SINGLE_WRITER_ROLES, "background")

DEFAULT_BASE_PORT: Final = 18100
INTERNAL_HOST: Final = "127.0.0.1"
MAIN: Final = "main"  # the main process: its file, its program, its upstream
# What every process serves on its internal listener (the proxy decides what reaches it)
INTERNAL_RESOURCES: Final = ("client", "federation", "keys", "media", "health", "replication")

_COUNT = re.compile(r"[0-9]+")


class DeployError(Exception):
    """A bad request to generate-workers; str() is one line."""


@dataclass(frozen=True, slots=True)
class Process:
    """One process of the deployment. The main process has no roles of its own: it
    does whatever no worker was asked to do."""

    name: str  # "main", or the worker_name
    roles: frozenset[str]
    port: int

    @property
    def is_main(self) -> bool:
        return self.name == MAIN

    @property
    def instance_name(self) -> str:
        """Its name in stream_writers and the duty options."""
        return "master" if self.is_main else self.name


@dataclass(frozen=True, slots=True)
class WorkerGroup:
    """``roles=count`` of ``--workers``."""

    roles: tuple[str, ...]
    count: int


def parse_workers_spec(spec: str) -> tuple[WorkerGroup, ...]:
    """Read ``events=2,sync=2,client`` (a count defaults to 1; ``a+b=2`` gives two
    processes holding both roles). DeployError names the bad part."""
    groups: list[WorkerGroup] = []
    seen: set[str] = set()
    parts = [part.strip() for part in spec.split(",")]
    if not any(parts):
        raise DeployError("--workers: give at least one role, like events=2,sync=2")
    for part in parts:
        if not part:
            raise DeployError(f"--workers: empty entry in {spec!r}")
        names, has_count, count_text = part.partition("=")
        count_text = count_text.strip()
        if has_count and not (_COUNT.fullmatch(count_text) and int(count_text) > 0):
            raise DeployError(f'--workers: "{part}": the count must be a positive integer')
        count = int(count_text) if has_count else 1
        roles = tuple(role.strip() for role in names.split("+"))
        for role in roles:
            if role not in ROLES:
                raise DeployError(f'--workers: unknown role "{role}" (roles: {", ".join(ROLES)})')
            if role in seen:
                raise DeployError(f'--workers: role "{role}" is given twice')
            seen.add(role)
            if role in SINGLE_PROCESS_ROLES and count > 1:
                raise DeployError(
                    f'--workers: "{part}": {role} runs in exactly one process; '
                    f"give {names.strip()}=1"
                )
        groups.append(WorkerGroup(roles=roles, count=count))
    return tuple(groups)


@dataclass(frozen=True, slots=True)
class WorkersPlan:
    """Every process, in order (the main process first)."""

    processes: tuple[Process, ...]

    @property
    def main(self) -> Process:
        return self.processes[0]

    @property
    def workers(self) -> tuple[Process, ...]:
        return self.processes[1:]

    def holding(self, role: str) -> tuple[Process, ...]:
        """The workers holding `role`, in order."""
        return tuple(p for p in self.workers if role in p.roles)

    def _instances(self, role: str) -> list[str]:
        return [p.instance_name for p in self.holding(role)]

    def shared_options(self, redis: dict[str, Any], replication_secret: str) -> dict[str, Any]:
        """The worker options of the shared configuration (Synapse's names), the
        same in every process's file. `redis` is the shared file's section."""
        stream_writers: dict[str, list[str]] = {"events": self._instances("events") or ["master"]}
        for stream in SINGLE_WRITER_ROLES:
            stream_writers[stream] = self._instances(stream) or ["master"]
        options: dict[str, Any] = {
            "redis": {**redis, "enabled": True},
            "instance_map": {
                p.name: {"host": INTERNAL_HOST, "port": p.port} for p in self.processes
            },
            "stream_writers": stream_writers,
        }
        if senders := self._instances("federation_sender"):
            options["federation_sender_instances"] = senders
        if pushers := self._instances("pusher"):
            options["pusher_instances"] = pushers
        if background := self._instances("background"):
            options["run_background_tasks_on"] = background[0]
            options["update_user_directory_from_worker"] = background[0]
        if media := self._instances("media"):
            options["media_instance_running_background_jobs"] = media[0]
        options["worker_replication_secret"] = replication_secret
        return options


def internal_listener(port: int) -> dict[str, Any]:
    """The one listener of a process: what the proxy forwards, and replication."""
    return {
        "port": port,
        "bind_addresses": [INTERNAL_HOST],
        "type": "http",
        "x_forwarded": True,  # nginx sets X-Forwarded-For itself (see nginx.py)
        "resources": [{"names": list(INTERNAL_RESOURCES)}],
    }


def plan_workers(groups: tuple[WorkerGroup, ...], base_port: int) -> WorkersPlan:
    """Name and place every process: main on `base_port`, workers on the next ports."""
    names: list[tuple[str, frozenset[str]]] = [(MAIN, frozenset())]
    for group in groups:
        stem = "_".join(group.roles)
        names += [(f"{stem}{n}", frozenset(group.roles)) for n in range(1, group.count + 1)]
    last = base_port + len(names) - 1
    if not 1024 <= base_port or last > 65535:
        raise DeployError(
            f"--base-port: {len(names)} processes need ports {base_port} to {last}, "
            "which must lie from 1024 to 65535"
        )
    return WorkersPlan(
        processes=tuple(
            Process(name=name, roles=roles, port=base_port + index)
            for index, (name, roles) in enumerate(names)
        )
    )
