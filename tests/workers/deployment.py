"""Real multi-process deployments for tests: a main process and workers, each its own
``python -m homeserver`` process, sharing a new PostgreSQL database and the machine's
Redis (a channel of their own, by a unique server name).

Processes are started and stopped by the test; their stderr goes to a file under
the test's directory, printed when a test fails to reach them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg
from psycopg.conninfo import conninfo_to_dict

REDIS_HOST = os.environ.get("HOMESERVER_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("HOMESERVER_TEST_REDIS_PORT", "6379"))
START_DEADLINE_S = 60.0


def common_settings(pg_admin: str, database: str, data: Path) -> str:
    """The part of a test deployment's shared config that every layout has: the
    PostgreSQL database, keys and media under ``data``, fast password hashing, open
    registration, no rate limits, and Redis."""
    admin = conninfo_to_dict(pg_admin)
    return textwrap.dedent(f"""\
        database:
          name: psycopg
          args:
            user: {admin.get("user", "postgres")}
            host: {admin.get("host", "127.0.0.1")}
            port: {admin.get("port", 5432)}
            dbname: {database}
            cp_min: 1
            cp_max: 5
        signing_key_path: "{data / "signing.key"}"
        media_store_path: "{data / "media"}"
        bcrypt_rounds: 4
        log_level: WARNING
        enable_registration: true
        enable_registration_without_verification: true
        rc_message: {{per_second: 10000, burst_count: 10000}}
        rc_registration: {{per_second: 10000, burst_count: 10000}}
        rc_login:
          address: {{per_second: 10000, burst_count: 10000}}
          account: {{per_second: 10000, burst_count: 10000}}
          failed_attempts: {{per_second: 10000, burst_count: 10000}}
        redis: {{enabled: true, host: {REDIS_HOST}, port: {REDIS_PORT}}}
        """)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    name: str  # "master" for the main process
    port: int
    resources: tuple[str, ...]
    config: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Deployment:
    """One homeserver as several processes; ``events`` lists the event writers."""

    root: Path
    pg_admin: str
    workers: Sequence[tuple[str, Sequence[str]]]  # (name, resources)
    events: Sequence[str] = ("master",)
    server_name: str = field(default_factory=lambda: f"w{secrets.token_hex(4)}.test")
    instances: dict[str, Instance] = field(default_factory=dict)
    database: str = ""
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    extra: str = ""  # more top-level YAML of the shared file (duties, whitelists ...)

    def create_database(self) -> None:
        self.database = f"hs_workers_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def drop_database(self) -> None:
        if self.database:
            with psycopg.connect(self.pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def write_configs(self) -> None:
        self.instances["master"] = Instance(
            "master", free_port(), ("client", "federation", "replication")
        )
        for name, resources in self.workers:
            self.instances[name] = Instance(name, free_port(), (*resources, "replication"))
        instance_map = "".join(
            f"  {'main' if i.name == 'master' else i.name}: {{host: 127.0.0.1, port: {i.port}}}\n"
            for i in self.instances.values()
        )
        writers = ", ".join(self.events)
        main = self.instances["master"]
        data = self.root / "data"
        shared = self.root / "homeserver.yaml"
        shared.write_text(
            textwrap.dedent(f"""\
                server_name: {self.server_name}
                public_baseurl: {main.base_url}/
                listeners:
                  - port: {main.port}
                    bind_addresses: [127.0.0.1]
                    resources: [{{names: [{", ".join(main.resources)}]}}]
                """)
            + common_settings(self.pg_admin, self.database, data)
            + textwrap.dedent(f"""\
                worker_replication_secret: {self.secret}
                instance_map:
                """)
            + instance_map
            + f"stream_writers:\n  events: [{writers}]\n"
            + self.extra,
            encoding="utf-8",
        )
        main.config = shared
        for instance in self.instances.values():
            if instance.name == "master":
                continue
            path = self.root / f"{instance.name}.yaml"
            path.write_text(
                textwrap.dedent(f"""\
                    worker_app: synapse.app.generic_worker
                    worker_name: {instance.name}
                    worker_listeners:
                      - type: http
                        port: {instance.port}
                        bind_addresses: [127.0.0.1]
                        resources: [{{names: [{", ".join(instance.resources)}]}}]
                    """),
                encoding="utf-8",
            )
            instance.config = path

    def command(self, name: str) -> list[str]:
        instance = self.instances[name]
        argv = [sys.executable, "-m", "homeserver", "--config", str(self.root / "homeserver.yaml")]
        if name != "master":
            assert instance.config is not None
            argv += ["--config", str(instance.config)]
        return argv

    def spawn(self, name: str) -> None:
        instance = self.instances[name]
        instance.log = self.root / f"{name}.log"
        with open(instance.log, "ab") as log:
            instance.process = subprocess.Popen(
                self.command(name),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
            )

    async def wait_healthy(self, name: str, deadline_s: float = START_DEADLINE_S) -> None:
        instance = self.instances[name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        async with aiohttp.ClientSession() as session:
            while True:
                process = instance.process
                if process is not None and process.poll() is not None:
                    raise AssertionError(f"{name} exited {process.returncode}:\n{self.log(name)}")
                try:
                    async with session.get(
                        f"{instance.base_url}/_matrix/client/versions"
                    ) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if loop.time() > deadline:
                    raise AssertionError(f"{name} did not start:\n{self.log(name)}")
                await asyncio.sleep(0.05)

    def log(self, name: str) -> str:
        path = self.instances[name].log
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else ""

    async def start(self) -> None:
        self.create_database()
        self.write_configs()
        self.spawn("master")  # migrates the database before the workers start
        await self.wait_healthy("master")
        others = [n for n in self.instances if n != "master"]
        for name in others:
            self.spawn(name)
        await asyncio.gather(*(self.wait_healthy(n) for n in others))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.instances[name].process
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=30)

    async def restart(self, name: str) -> None:
        self.kill(name)
        self.spawn(name)
        await self.wait_healthy(name)

    def stop(self) -> None:
        """SIGTERM to every process at once, then wait for each; drop the database."""
        running = [i.process for i in self.instances.values() if i.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.drop_database()
