#!/usr/bin/env python3
"""Federation interop with Synapse, run by hand (not collected by pytest).

    . .venv/bin/activate
    python tests/interop/run_synapse_interop.py [--port 18600] [--synapse-port 18610]
        [--second-port 18602] [--runs 3] [--only-three]

Needs the Synapse harness of ``shared/tools/synapse`` (``setup.sh`` already run; its
venv at ``/tmp/synharness/venv``). Starts two instances of this project's server as
subprocesses with temporary configs (client API on ``--port`` and ``--second-port``,
TLS federation on each +1, server_name ``127.0.0.1:<port+1>``, a self-signed
certificate, certificates not verified, loopback whitelisted) and a fresh Synapse
(``start.sh``), then shows, each way round: a room created on one side joined from
the other (by room ID with ``server_name``/``via``), messages both ways in /sync,
read receipts and typing both ways; invites both ways (accepted); history paged back;
a room of three servers (ours, Synapse, our second instance) where all send at once
and every user sees every message (``--runs`` times); Synapse stopped and started
again, and our backlog delivered once it is back; and finally runs ``fedcheck.py`` in
both directions. Prints PASS/FAIL per step and exits non-zero if any failed.

``--workers SPEC`` (e.g. ``events=2,sync=1,federation_inbound=1,federation_sender=1``)
runs our first server as a deployment with workers instead: a new PostgreSQL database
(``HOMESERVER_TEST_PG``), Redis on 127.0.0.1:6379, ``generate-workers`` and
``supervisord``, with nginx on the same client and TLS federation ports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from homeserver.selfsigned import make_self_signed_certificate

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("SYNAPSE_TOOLS", "/work/shared/tools/synapse"))
SYNHARNESS = Path(os.environ.get("SYNHARNESS", "/tmp/synharness"))
CS = "/_matrix/client/v3"
WAIT_S = 30.0
# how soon every server of a three-server room has every message (Synapse's own rooms
# converge in well under a second on loopback)
THREE_SERVERS_WAIT_S = 10.0


class StepFailed(Exception):
    pass


class Client:
    """A logged-in user of one homeserver (client-server API over HTTP)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token = ""
        self.user_id = ""
        self.since: str | None = None
        self.server_name = ""

    async def call(
        self, method: str, path: str, body: Any = None, *, params: Any = None, ok: int = 200
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(
            method, self.base + CS + path, json=body, params=params, headers=headers
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status != ok:
                raise StepFailed(f"{method} {path} -> {resp.status} {data}")
            return data

    async def register(self, localpart: str) -> None:
        body: dict[str, Any] = {"username": localpart, "password": secrets.token_hex(8)}
        first = await self.call("POST", "/register", body, ok=401)
        body["auth"] = {"type": "m.login.dummy", "session": first["session"]}
        answer = await self.call("POST", "/register", body)
        self.token, self.user_id = answer["access_token"], answer["user_id"]
        self.since = (await self.call("GET", "/sync", params={"timeout": "0"}))["next_batch"]

    async def sync_until(
        self, what: str, predicate: Callable[[dict[str, Any]], bool], *, wait_s: float = WAIT_S
    ) -> Any:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            params = {"timeout": str(int(min(5.0, max(deadline - time.monotonic(), 0)) * 1000))}
            if self.since:
                params["since"] = self.since
            body = await self.call("GET", "/sync", params=params)
            self.since = body["next_batch"]
            if predicate(body):
                return body
        raise StepFailed(f"{self.user_id} did not see {what} within {wait_s:.0f}s")


def room_section(sync: dict[str, Any], section: str, room_id: str) -> dict[str, Any] | None:
    return sync.get("rooms", {}).get(section, {}).get(room_id)


def has_message(room_id: str, text: str) -> Callable[[dict[str, Any]], bool]:
    def check(sync: dict[str, Any]) -> bool:
        room = room_section(sync, "join", room_id) or {}
        return any(
            e.get("content", {}).get("body") == text
            for e in room.get("timeline", {}).get("events", [])
        )

    return check


def has_ephemeral(room_id: str, kind: str, user_id: str) -> Callable[[dict[str, Any]], bool]:
    def check(sync: dict[str, Any]) -> bool:
        room = room_section(sync, "join", room_id) or {}
        for e in room.get("ephemeral", {}).get("events", []):
            if e.get("type") != kind:
                continue
            if kind == "m.typing" and user_id in e.get("content", {}).get("user_ids", []):
                return True
            if kind == "m.receipt":
                for receipt in e.get("content", {}).values():
                    if user_id in receipt.get("m.read", {}):
                        return True
        return False

    return check


# -- processes ------------------------------------------------------------------------


def write_config(directory: Path, port: int) -> Path:
    cert, key = make_self_signed_certificate(directory)
    unlimited = {"per_second": 100000, "burst_count": 100000}
    config = {
        "server_name": f"127.0.0.1:{port + 1}",
        "signing_key_path": str(directory / "signing.key"),
        "media_store_path": str(directory / "media"),
        "database": {"name": "sqlite3", "args": {"database": str(directory / "hs.db")}},
        "listeners": [
            {"port": port, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["client"]}]},
            {
                "port": port + 1,
                "bind_addresses": ["127.0.0.1"],
                "tls": True,
                "resources": [{"names": ["federation", "keys"]}],
            },
        ],
        "tls_certificate_path": str(cert),
        "tls_private_key_path": str(key),
        "federation_verify_certificates": False,
        "federation_ip_range_whitelist": ["127.0.0.0/8"],
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "bcrypt_rounds": 4,
        "rc_message": unlimited,
        "rc_registration": unlimited,
        "rc_login": {"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
        "rc_joins": {"local": unlimited, "remote": unlimited},
        "rc_room_creation": unlimited,
        "rc_presence": {"per_user": unlimited},
        "room_list_publication_rules": [{"action": "allow"}],
    }
    path = directory / "homeserver.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


async def wait_for_versions(base: str) -> None:
    deadline = time.monotonic() + 60.0
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base}/_matrix/client/versions") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{base} did not start")


# -- the scenario ---------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    async def step(self, name: str, action: Callable[[], Awaitable[Any]]) -> Any:
        started = time.monotonic()
        try:
            result = await action()
        except Exception as exc:
            self.results.append((name, False, f"{type(exc).__name__}: {exc}"))
            print(f"FAIL  {name}: {exc}", flush=True)
            return None
        took = time.monotonic() - started
        self.results.append((name, True, f"{took:.2f}s"))
        print(f"PASS  {name} ({took:.2f}s)", flush=True)
        return result

    @property
    def failed(self) -> int:
        return sum(1 for _n, ok, _d in self.results if not ok)


async def room_both_ways(
    report: Report, label: str, creator: Client, joiner: Client, creator_server: str
) -> None:
    """``creator`` makes a public room, ``joiner`` (other server) joins it; messages,
    receipts and typing both ways."""
    room_id = await report.step(
        f"{label}: create a public room",
        lambda: creator.call("POST", "/createRoom", {"preset": "public_chat", "name": label}),
    )
    if room_id is None:
        return
    room_id = room_id["room_id"]
    via = f"?server_name={quote(creator_server)}&via={quote(creator_server)}"
    joined = await report.step(
        f"{label}: join {room_id} from the other server",
        lambda: joiner.call("POST", f"/join/{quote(room_id)}{via}", {}),
    )
    if joined is None:
        return
    await report.step(
        f"{label}: joiner's /sync shows the room joined",
        lambda: joiner.sync_until(
            "the room", lambda s: room_section(s, "join", room_id) is not None
        ),
    )
    await report.step(
        f"{label}: creator's /sync shows the remote join",
        lambda: creator.sync_until(
            "the join",
            lambda s: any(
                e.get("type") == "m.room.member" and e.get("state_key") == joiner.user_id
                for e in (room_section(s, "join", room_id) or {})
                .get("timeline", {})
                .get("events", [])
            ),
        ),
    )
    txn = secrets.token_hex(4)

    async def send(user: Client, text: str) -> str:
        body = {"msgtype": "m.text", "body": text}
        answer = await user.call("PUT", f"/rooms/{room_id}/send/m.room.message/{txn}{text}", body)
        return str(answer["event_id"])

    ids: dict[str, str] = {}
    for sender, receiver, text in (
        (creator, joiner, "from-creator"),
        (joiner, creator, "from-joiner"),
    ):

        async def one(s: Client = sender, r: Client = receiver, t: str = text) -> None:
            ids[t] = await send(s, t)
            await r.sync_until(f"message {t}", has_message(room_id, t))

        await report.step(f"{label}: message {text} arrives", one)
    for sender, receiver, text in (
        (joiner, creator, "from-creator"),
        (creator, joiner, "from-joiner"),
    ):
        if text not in ids:
            continue

        async def receipt(s: Client = sender, r: Client = receiver, t: str = text) -> None:
            await s.call("POST", f"/rooms/{room_id}/receipt/m.read/{quote(ids[t])}", {})
            await r.sync_until("the receipt", has_ephemeral(room_id, "m.receipt", s.user_id))

        await report.step(f"{label}: read receipt of {sender.user_id} arrives", receipt)

        async def typing(s: Client = sender, r: Client = receiver) -> None:
            await s.call(
                "PUT",
                f"/rooms/{room_id}/typing/{quote(s.user_id)}",
                {"typing": True, "timeout": 20000},
            )
            await r.sync_until("typing", has_ephemeral(room_id, "m.typing", s.user_id))

        await report.step(f"{label}: typing of {sender.user_id} arrives", typing)


async def history_both_ways(report: Report, ours: Client, theirs: Client) -> None:
    """A room with history on one side, joined from the other: the joiner pages back
    with /messages through everything sent before its join (backfill)."""
    for creator, joiner, creator_server, label in (
        (ours, theirs, ours.server_name, "ours->synapse"),
        (theirs, ours, theirs.server_name, "synapse->ours"),
    ):

        async def flow(
            c: Client = creator, j: Client = joiner, server: str = creator_server
        ) -> None:
            room = await c.call("POST", "/createRoom", {"preset": "public_chat", "name": "old"})
            room_id = room["room_id"]
            sent = [f"history {i}" for i in range(30)]
            for text in sent:
                body = {"msgtype": "m.text", "body": text}
                txn = secrets.token_hex(6)
                await c.call("PUT", f"/rooms/{room_id}/send/m.room.message/{txn}", body)
            via = f"?server_name={quote(server)}&via={quote(server)}"
            await j.call("POST", f"/join/{quote(room_id)}{via}", {})
            seen: list[str] = []
            token: str | None = None
            for _ in range(40):
                params: dict[str, Any] = {"dir": "b", "limit": 10}
                if token is not None:
                    params["from"] = token
                page = await j.call("GET", f"/rooms/{quote(room_id)}/messages", params=params)
                seen += [
                    e["content"].get("body")
                    for e in page["chunk"]
                    if e.get("type") == "m.room.message"
                ]
                token = page.get("end")
                if token is None or not page["chunk"]:
                    break
            if seen != list(reversed(sent)):
                raise StepFailed(f"/messages gave {seen}")

        await report.step(f"history {label}: the joiner pages back through 30 messages", flow)


async def invite_both_ways(report: Report, ours: Client, theirs: Client) -> None:
    for inviter, invitee, label in (
        (ours, theirs, "ours->synapse"),
        (theirs, ours, "synapse->ours"),
    ):

        async def flow(i: Client = inviter, j: Client = invitee) -> None:
            room = await i.call("POST", "/createRoom", {"preset": "private_chat", "name": "invite"})
            room_id = room["room_id"]
            await i.call("POST", f"/rooms/{room_id}/invite", {"user_id": j.user_id})
            await j.sync_until(
                "the invite", lambda s: room_section(s, "invite", room_id) is not None
            )
            await j.call("POST", f"/join/{quote(room_id)}", {})
            await j.sync_until("the join", lambda s: room_section(s, "join", room_id) is not None)

        await report.step(f"invite {label}: invited, /sync invite, accepted", flow)


async def three_servers(
    report: Report, run: int, a: Client, b1: Client, b2: Client, c: Client
) -> None:
    """A room on ours (A) joined by two users of Synapse (B), then by a user of our
    second instance (C); A raises C's power level; A, B and C each send one message
    at once: every user sees all three within seconds. Synapse joins a room of ours
    with a partial-state join, so until its resync against A completes it sends its
    events only to the servers our send_join answer named."""
    label = f"3 servers, run {run}"
    created = await report.step(
        f"{label}: A creates a public room",
        lambda: a.call("POST", "/createRoom", {"preset": "public_chat", "name": label}),
    )
    if created is None:
        return
    room_id = created["room_id"]
    via = f"?server_name={quote(a.server_name)}&via={quote(a.server_name)}"
    for joiner in (b1, b2, c):

        async def join(j: Client = joiner) -> bool:
            await j.call("POST", f"/join/{quote(room_id)}{via}", {})
            await j.sync_until("the room", lambda s: room_section(s, "join", room_id) is not None)
            return True

        if await report.step(f"{label}: {joiner.user_id} joins", join) is None:
            return

    async def raise_c() -> bool:
        levels = await a.call("GET", f"/rooms/{quote(room_id)}/state/m.room.power_levels")
        levels.setdefault("users", {})[c.user_id] = 50
        await a.call("PUT", f"/rooms/{quote(room_id)}/state/m.room.power_levels", levels)
        return True

    if await report.step(f"{label}: A raises C's power level", raise_c) is None:
        return
    senders = {"A": a, "B": b1, "C": c}
    txn = secrets.token_hex(4)

    async def send(name: str, user: Client) -> None:
        body = {"msgtype": "m.text", "body": f"{label} from {name}"}
        await user.call("PUT", f"/rooms/{quote(room_id)}/send/m.room.message/{txn}{name}", body)

    sent = await report.step(
        f"{label}: A, B and C send at once",
        lambda: asyncio.gather(*(send(n, u) for n, u in senders.items())),
    )
    if sent is None:
        return
    for reader in (a, b1, b2, c):

        async def sees_all(r: Client = reader) -> None:
            wanted = {f"{label} from {n}" for n in senders}
            seen: set[str] = set()

            def check(sync: dict[str, Any]) -> bool:
                room = room_section(sync, "join", room_id) or {}
                for e in room.get("timeline", {}).get("events", []):
                    body = e.get("content", {}).get("body")
                    if body in wanted:
                        seen.add(body)
                return seen == wanted

            await r.sync_until("all three messages", check, wait_s=THREE_SERVERS_WAIT_S)

        await report.step(f"{label}: {reader.user_id} sees all three messages", sees_all)


# a destination back after an outage: its backlog starts within a second of its first
# request (Synapse catches us up in about 1.8 s); Synapse's own work on top of that
CATCH_UP_WAIT_S = 3.0


async def outage_catch_up(
    report: Report,
    a: Client,
    b: Client,
    stop: Callable[[], Awaitable[Any]],
    start: Callable[[], Awaitable[Any]],
) -> None:
    """Synapse goes down while ours sends into a shared room; once it is back, its
    first request to us (b's next message) starts our backlog to it at once."""
    room = await report.step(
        "outage: a room on ours joined from synapse",
        lambda: a.call("POST", "/createRoom", {"preset": "public_chat", "name": "outage"}),
    )
    if room is None:
        return
    room_id = room["room_id"]
    via = f"?server_name={quote(a.server_name)}&via={quote(a.server_name)}"
    await b.call("POST", f"/join/{quote(room_id)}{via}", {})
    await b.sync_until("the room", lambda s: room_section(s, "join", room_id) is not None)
    await report.step("outage: synapse stops", stop)
    missed = [f"missed while down {i}" for i in range(3)]
    for text in missed:
        body = {"msgtype": "m.text", "body": text}
        await a.call(
            "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/{secrets.token_hex(6)}", body
        )
    await asyncio.sleep(1.0)  # ours tries, fails, backs off
    if await report.step("outage: synapse starts again", start) is None:
        return

    async def catch_up() -> float:
        started = time.monotonic()
        body = {"msgtype": "m.text", "body": "back"}
        await b.call(
            "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/{secrets.token_hex(6)}", body
        )
        seen: set[str] = set()

        def check(sync: dict[str, Any]) -> bool:
            room = room_section(sync, "join", room_id) or {}
            for e in room.get("timeline", {}).get("events", []):
                seen.add(e.get("content", {}).get("body"))
            return set(missed) <= seen

        await b.sync_until("the missed messages", check, wait_s=CATCH_UP_WAIT_S)
        return time.monotonic() - started

    took = await report.step(
        f"outage: synapse has ours' backlog within {CATCH_UP_WAIT_S:.0f}s of its first request",
        catch_up,
    )
    if took is not None:
        print(f"      backlog delivered {took:.2f}s after synapse's first request", flush=True)


async def scenario(
    report: Report,
    ours_port: int,
    syn_port: int,
    second_port: int,
    runs: int,
    only_three: bool,
    synapse_name: str,
) -> None:
    ours_base, ours_name = f"http://127.0.0.1:{ours_port}", f"127.0.0.1:{ours_port + 1}"
    syn_base, syn_name = f"http://127.0.0.1:{syn_port}", f"127.0.0.1:{syn_port + 1}"
    second_base = f"http://127.0.0.1:{second_port}"
    await wait_for_versions(ours_base)
    await wait_for_versions(syn_base)
    await wait_for_versions(second_base)
    async with aiohttp.ClientSession() as session:
        a, b = Client(session, ours_base), Client(session, syn_base)
        await report.step("register a user on ours", lambda: a.register("alice"))
        await report.step("register a user on synapse", lambda: b.register("bob"))
        a.server_name, b.server_name = ours_name, syn_name
        if not only_three:
            await room_both_ways(report, "room on ours", a, b, ours_name)
            await room_both_ways(report, "room on synapse", b, a, syn_name)
            await invite_both_ways(report, a, b)
            await history_both_ways(report, a, b)
        b2, c = Client(session, syn_base), Client(session, second_base)
        await report.step("register a second user on synapse", lambda: b2.register("bob2"))
        await report.step("register a user on our second server", lambda: c.register("carol"))
        for run in range(1, runs + 1):
            for client in (a, b, b2, c):  # each run reads /sync from now on
                client.since = (await client.call("GET", "/sync", params={"timeout": "0"}))[
                    "next_batch"
                ]
            await three_servers(report, run, a, b, b2, c)
        if not only_three:

            async def stop() -> bool:
                await asyncio.to_thread(stop_synapse, synapse_name)
                return True

            async def start() -> bool:
                await asyncio.to_thread(start_synapse, synapse_name, syn_port, False)
                await wait_for_versions(syn_base)
                return True

            await outage_catch_up(report, a, b, stop, start)
    if only_three:
        return
    python = str(SYNHARNESS / "venv" / "bin" / "python")
    pairs = (("ours", ours_base, "synapse", syn_base), ("synapse", syn_base, "ours", ours_base))
    for first, first_url, second, second_url in pairs:

        async def fedcheck(x: str = first_url, y: str = second_url) -> None:
            done = await asyncio.to_thread(
                subprocess.run,
                [python, str(TOOLS / "fedcheck.py"), "--a", x, "--b", y],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise StepFailed(done.stdout[-1500:] + done.stderr[-500:])

        await report.step(f"fedcheck.py --a {first} --b {second}", fedcheck)


def start_ours(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir, port)
    with (workdir / "homeserver.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "homeserver", "run", "-c", str(config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


class WorkersDeployment:
    """Our server as main + workers behind nginx, under supervisord."""

    def __init__(self, workdir: Path, port: int, spec: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        admin_conninfo = os.environ.get(
            "HOMESERVER_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        )
        self.admin_conninfo = admin_conninfo
        self.database = f"hs_interop_{secrets.token_hex(4)}"
        with psycopg.connect(admin_conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        admin = conninfo_to_dict(admin_conninfo)
        path = write_config(workdir, port)
        config = json.loads(path.read_text())
        config["database"] = {
            "name": "psycopg",
            "args": {
                "user": admin.get("user", "postgres"),
                "host": admin.get("host", "127.0.0.1"),
                "port": int(admin.get("port", 5432)),
                "dbname": self.database,
            },
        }
        config["redis"] = {"enabled": True}
        path.write_text(json.dumps(config, indent=2))
        out = workdir / "deploy"
        subprocess.run(
            [
                *(sys.executable, "-m", "homeserver", "generate-workers", "-c", str(path)),
                *("--workers", spec, "--out", str(out), "--base-port", str(port + 100)),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        self.conf = out / "supervisord.conf"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        import psycopg

        subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), "shutdown"],
            capture_output=True,
        )
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def start_synapse(name: str, port: int, fresh: bool) -> None:
    env = dict(os.environ, SYN_LOG_LEVEL="INFO")
    if fresh:
        env["FRESH"] = "1"
    subprocess.run(
        [str(TOOLS / "start.sh"), name, str(port)], check=True, env=env, capture_output=True
    )


def stop_synapse(name: str) -> None:
    subprocess.run([str(TOOLS / "stop.sh"), name], capture_output=True)


def stop_ours(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18600, help="our client port (+1: federation)")
    parser.add_argument("--synapse-port", type=int, default=18610)
    parser.add_argument(
        "--second-port", type=int, default=0, help="our second server (default --port + 2)"
    )
    parser.add_argument("--synapse-name", default="interop")
    parser.add_argument("--runs", type=int, default=3, help="runs of the three-server room")
    parser.add_argument(
        "--only-three", action="store_true", help="only the three-server room scenario"
    )
    parser.add_argument("--keep-synapse", action="store_true")
    parser.add_argument(
        "--workers", default=None, help="run our first server with these generate-workers roles"
    )
    args = parser.parse_args()
    second_port = args.second_port or args.port + 2
    workdir = Path(tempfile.mkdtemp(prefix="interop-"))
    report = Report()
    if args.workers:
        deployment = WorkersDeployment(workdir / "a", args.port, args.workers)
        stop_first: Callable[[], None] = deployment.stop
        print(f"ours: main + workers {args.workers}, logs {workdir / 'a' / 'deploy' / 'logs'}")
    else:
        ours = start_ours(workdir / "a", args.port)

        def stop_first() -> None:
            stop_ours(ours)

    second = start_ours(workdir / "c", second_port)
    try:
        start_synapse(args.synapse_name, args.synapse_port, True)
        print(f"ours: 127.0.0.1:{args.port + 1}, log {workdir / 'a' / 'homeserver.log'}")
        print(f"ours (second): 127.0.0.1:{second_port + 1}, log {workdir / 'c' / 'homeserver.log'}")
        print(f"synapse: 127.0.0.1:{args.synapse_port + 1}, data {SYNHARNESS / 'data'}")
        asyncio.run(
            scenario(
                report,
                args.port,
                args.synapse_port,
                second_port,
                args.runs,
                args.only_three,
                args.synapse_name,
            )
        )
    finally:
        stop_first()
        stop_ours(second)
        if not args.keep_synapse:
            stop_synapse(args.synapse_name)
    print(f"\n{len(report.results) - report.failed} passed, {report.failed} failed")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
