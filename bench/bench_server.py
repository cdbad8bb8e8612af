"""A homeserver process for the benchmark scripts: its directory, ports and config."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from homeserver.selfsigned import make_self_signed_certificate

STARTUP_TIMEOUT_S = 60.0

_REPO = Path(__file__).resolve().parent.parent
# The Synapse reference harness beside the checkout (../shared), also found from a
# worktree deeper down.
SYNAPSE_TOOLS = next(
    (
        parent / "shared" / "tools" / "synapse"
        for parent in _REPO.parents
        if (parent / "shared" / "tools" / "synapse" / "start.sh").exists()
    ),
    _REPO.parent / "shared" / "tools" / "synapse",
)


def require_synapse_harness() -> None:
    if not (SYNAPSE_TOOLS / "start.sh").exists():
        sys.exit(f"no Synapse harness at {SYNAPSE_TOOLS}")


@contextmanager
def fresh_synapse(
    name: str, port: int, extra_yaml: Path | None = None
) -> Iterator[tuple[str, int]]:
    """A fresh Synapse from the harness (``start.sh`` with ``FRESH=1``, and
    ``EXTRA_YAML`` when given): its client base URL and process ID; stopped after."""
    env = dict(os.environ, FRESH="1")
    if extra_yaml is not None:
        env["EXTRA_YAML"] = str(extra_yaml)
    started = subprocess.run(
        [str(SYNAPSE_TOOLS / "start.sh"), name, str(port)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        sys.exit(f"Synapse did not start:\n{started.stdout}{started.stderr}")
    base = started.stdout.strip().splitlines()[-1]
    synharness = Path(os.environ.get("SYNHARNESS", "/tmp/synharness"))
    pid = int((synharness / "data" / name / "pid").read_text().strip())
    try:
        yield base, pid
    finally:
        subprocess.run([str(SYNAPSE_TOOLS / "stop.sh"), name], check=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Instance:
    """One homeserver: its directory, ports, config file and (once started) process."""

    def __init__(self, name: str, root: Path, tls: tuple[Path, Path], database: dict[str, Any]):
        self.name = name
        self.directory = root / name
        self.directory.mkdir()
        self.fed_port = free_port()
        self.client_port = free_port()
        self.server_name = f"localhost:{self.fed_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.raw: dict[str, Any] = {
            "server_name": self.server_name,
            "log_level": "INFO",
            "signing_key_path": str(self.directory / "signing.key"),
            "media_store_path": str(self.directory / "media"),
            "database": database,
            "listeners": [
                {
                    "port": self.fed_port,
                    "bind_addresses": ["127.0.0.1"],
                    "tls": True,
                    "resources": [{"names": ["federation", "keys"]}],
                },
                {
                    "port": self.client_port,
                    "bind_addresses": ["127.0.0.1"],
                    "resources": [{"names": ["client"]}],
                },
            ],
            "tls_certificate_path": str(tls[0]),
            "tls_private_key_path": str(tls[1]),
            "federation_verify_certificates": False,
            "federation_ip_range_whitelist": ["127.0.0.0/8"],
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "bcrypt_rounds": 4,
            "rc_message": {"per_second": 10000, "burst_count": 10000},
            "rc_registration": {"per_second": 10000, "burst_count": 10000},
            "rc_federation": {"per_second": 10000, "burst_count": 10000},
            "rc_joins": {
                "local": {"per_second": 10000, "burst_count": 10000},
                "remote": {"per_second": 10000, "burst_count": 10000},
            },
            "rc_room_creation": {"per_second": 10000, "burst_count": 10000},
            "rc_presence": {"per_user": {"per_second": 10000, "burst_count": 10000}},
            "room_list_publication_rules": [{"action": "allow"}],
        }
        self.config_path = self.directory / "homeserver.yaml"
        # JSON is YAML: the server reads this file as its config.
        self.config_path.write_text(json.dumps(self.raw, indent=2))

    @classmethod
    def on_sqlite(cls, name: str, root: Path) -> Instance:
        """An instance on its own SQLite file, with a new self-signed certificate."""
        database = {"name": "sqlite3", "args": {"database": str(root / name / "homeserver.db")}}
        return cls(name, root, make_self_signed_certificate(root), database)

    def configure(self, **options: Any) -> None:
        """Set top-level config options (before ``start``)."""
        self.raw.update(options)
        self.config_path.write_text(json.dumps(self.raw, indent=2))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, code: Path | str | None = None) -> None:
        """Start the server on the code of checkout ``code`` (default: this one),
        whatever the interpreter has installed."""
        log = open(self.directory / "homeserver.log", "wb")
        checkout = str(code) if code is not None else str(_REPO)
        path = os.pathsep.join(p for p in (checkout, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "homeserver", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=dict(os.environ, PYTHONPATH=path),
        )
        log.close()

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                sys.exit(f"{self.name} exited; see {self.directory / 'homeserver.log'}")
            try:
                async with session.get(f"{self.base}/_matrix/client/versions") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{self.name} did not start; see {self.directory / 'homeserver.log'}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid
