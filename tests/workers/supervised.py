"""A deployment as an admin runs it: ``generate-workers`` files, nginx in front,
every process under supervisord; on a new PostgreSQL database and the machine's
Redis (a channel of its own, by a unique server name)."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg

from homeserver.deploy.generate import generate_workers
from tests.workers.deployment import common_settings

START_DEADLINE_S = 90.0


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        if all(port_free(base + n) for n in range(count)):
            return base
    raise RuntimeError("no free ports")


@dataclass
class Supervised:
    root: Path
    pg_admin: str
    workers: str  # the generate-workers spec
    server_name: str = field(default_factory=lambda: f"s{secrets.token_hex(4)}.test")
    database: str = ""
    client_port: int = 0
    supervisord: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def conf(self) -> Path:
        return self.root / "deploy" / "supervisord.conf"

    def write(self) -> None:
        self.database = f"hs_sup_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        base = free_ports(16)
        self.client_port = base
        data = self.root / "data"
        shared = self.root / "homeserver.yaml"
        shared.write_text(
            textwrap.dedent(f"""\
                server_name: {self.server_name}
                public_baseurl: http://127.0.0.1:{base}/
                listeners:
                  - port: {base}
                    bind_addresses: [127.0.0.1]
                    resources: [{{names: [client]}}]
                """)
            + common_settings(self.pg_admin, self.database, data),
            encoding="utf-8",
        )
        nginx = nginx_binary()
        assert nginx is not None
        generate_workers(
            [shared],
            self.workers,
            self.root / "deploy",
            base_port=base + 1,
            nginx=nginx,
            environ={},
        )

    async def start(self) -> None:
        self.launch()
        await self.wait_ready()

    def launch(self) -> None:
        self.write()
        self.supervisord = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_DEADLINE_S
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{self.base_url}/_matrix/client/versions") as r:
                        if r.status == 200 and all(
                            state == "RUNNING" for state in self.states().values()
                        ):
                            return
                except aiohttp.ClientError:
                    pass
                assert loop.time() < deadline, f"not ready: {self.states()}\n{self.logs()}"
                await asyncio.sleep(0.1)

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout

    def states(self) -> dict[str, str]:
        states = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                states[parts[0]] = parts[1]
        return states

    def pid(self, program: str) -> int:
        text = self.ctl("pid", program).strip()
        return int(text) if text.isdigit() else 0

    def kill(self, program: str) -> int:
        pid = self.pid(program)
        assert pid > 0, self.states()
        os.kill(pid, signal.SIGKILL)
        return pid

    def logs(self) -> str:
        logs = self.root / "deploy" / "logs"
        out = []
        for path in sorted(logs.glob("*.log")) if logs.exists() else []:
            out.append(f"== {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(out)

    def stop(self) -> None:
        if self.supervisord is not None and self.supervisord.poll() is None:
            self.ctl("shutdown")
            try:
                self.supervisord.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.supervisord.kill()
                self.supervisord.wait()
        if self.database:
            with psycopg.connect(self.pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
