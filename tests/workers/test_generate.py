"""generate-workers: the files it writes load, nginx accepts and routes as the table
says, supervisor reads its file, and every bad request is one line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yaml
from aiohttp import web

from homeserver.__main__ import main
from homeserver.config import ConfigError, load_config
from homeserver.deploy.generate import Deployment, generate_workers
from homeserver.deploy.nginx import public_listeners
from homeserver.deploy.routes import FORBIDDEN, NOT_FOUND, ROUTES, upstream_for
from homeserver.deploy.workers import (
    MAIN,
    ROLES,
    DeployError,
    WorkersPlan,
    parse_workers_spec,
    plan_workers,
)
from homeserver.selfsigned import make_self_signed_certificate
from tests.workers.supervised import free_ports, nginx_binary

NO_ENV: dict[str, str] = {}
SPEC = "events=2,sync=2,client=1,federation_inbound=1,federation_sender=1,media=1,typing,receipts"
CLIENT = frozenset({"client", "federation", "keys", "media"})


def shared_config(
    tmp_path: Path,
    client_port: int = 8008,
    federation_port: int = 8448,
    extra: str = "",
    database: str = "{name: psycopg, args: {dbname: hs, user: postgres}}",
) -> Path:
    path = tmp_path / "homeserver.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            server_name: example.org
            database: {database}
            redis: {{host: 127.0.0.1, port: 6379, dbid: 2}}
            listeners:
              - port: {client_port}
                x_forwarded: true
                resources: [{{names: [client, federation, keys, media]}}]
              - port: {federation_port}
                resources: [{{names: [federation, keys]}}]
              - port: 9100
                type: metrics
            """)
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return path


def generate(
    tmp_path: Path,
    spec: str = SPEC,
    *,
    shared: Path | None = None,
    out: Path | None = None,
    base_port: int = 18100,
) -> Deployment:
    return generate_workers(
        [shared or shared_config(tmp_path)],
        spec,
        out or tmp_path / "out",
        environ=NO_ENV,
        base_port=base_port,
    )


# --- the files ----------------------------------------------------------------------


def test_generated_files_load_with_the_shared_config(tmp_path: Path) -> None:
    deployment = generate(tmp_path)
    out = deployment.out_dir
    shared = tmp_path / "homeserver.yaml"
    names = [p.name for p in deployment.plan.processes]
    assert names == [
        "main",
        "events1",
        "events2",
        "sync1",
        "sync2",
        "client1",
        "federation_inbound1",
        "federation_sender1",
        "media1",
        "typing1",
        "receipts1",
    ]
    assert [p.port for p in deployment.plan.processes] == list(range(18100, 18111))
    main_config = load_config([shared, out / "main.yaml"], NO_ENV)
    worker = main_config.worker
    assert worker.is_main and worker.multi_process
    assert worker.stream_writers.events == ("events1", "events2")
    assert worker.stream_writers.typing == ("typing1",)
    assert worker.stream_writers.receipts == ("receipts1",)
    assert worker.stream_writers.presence == ("master",)
    assert worker.federation_sender_instances == ("federation_sender1",)
    assert worker.pusher_instances == ("master",)
    assert worker.media_instance_running_background_jobs == "media1"
    assert worker.run_background_tasks_on == "master"
    assert main_config.redis.enabled and main_config.redis.dbid == 2
    secret = worker.replication_secret
    assert secret is not None and len(secret) >= 32
    # nginx took over 8008 and 8448; metrics stays on the main process
    kept = [(listener.port, listener.type) for listener in main_config.listeners]
    assert kept == [(18100, "http"), (9100, "metrics")]
    assert main_config.listeners[0].serves("replication") and main_config.listeners[0].x_forwarded
    assert main_config.listeners[0].bind_addresses == ("127.0.0.1",)
    for process in deployment.plan.workers:
        path = out / "workers" / f"{process.name}.yaml"
        config = load_config([shared, path], NO_ENV)
        assert config.worker.is_worker and config.worker.instance_name == process.name
        [listener] = config.listeners
        assert listener.port == process.port and listener.serves("replication")
        assert listener.x_forwarded
        assert config.worker.replication_secret == secret
        assert config.worker.instance_map == worker.instance_map
        assert config.worker.location(process.name).port == process.port
    for path in deployment.files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.suffix == ".yaml" else 0o644), path


def test_generating_again_keeps_the_secret_and_drops_old_workers(tmp_path: Path) -> None:
    first = generate(tmp_path)
    shared = tmp_path / "homeserver.yaml"
    secret = load_config([shared, first.out_dir / "main.yaml"], NO_ENV).worker.replication_secret
    second = generate(tmp_path, "events=1,sync=1")
    assert sorted(p.name for p in (second.out_dir / "workers").iterdir()) == [
        "events1.yaml",
        "sync1.yaml",
    ]
    again = load_config([shared, second.out_dir / "main.yaml"], NO_ENV).worker
    assert again.replication_secret == secret
    assert again.stream_writers.events == ("events1",)
    other = generate(tmp_path, "events=1", out=tmp_path / "elsewhere")
    fresh = load_config([shared, other.out_dir / "main.yaml"], NO_ENV).worker.replication_secret
    assert fresh != secret


def test_combined_roles_and_duties(tmp_path: Path) -> None:
    deployment = generate(tmp_path, "events+sync=2,pusher=2,background,to_device+presence")
    plan = deployment.plan
    assert [p.name for p in plan.workers] == [
        "events_sync1",
        "events_sync2",
        "pusher1",
        "pusher2",
        "background1",
        "to_device_presence1",
    ]
    worker = load_config(
        [tmp_path / "homeserver.yaml", deployment.out_dir / "main.yaml"], NO_ENV
    ).worker
    assert worker.stream_writers.events == ("events_sync1", "events_sync2")
    assert worker.stream_writers.to_device == ("to_device_presence1",)
    assert worker.stream_writers.presence == ("to_device_presence1",)
    assert worker.pusher_instances == ("pusher1", "pusher2")
    assert worker.run_background_tasks_on == "background1"
    assert worker.update_user_directory_from_worker == "background1"
    assert worker.federation_sender_instances == ("master",)
    assert upstream_for(plan, CLIENT, "GET", "/_matrix/client/v3/sync") == "sync"
    assert {p.name for p in plan.holding("sync")} == {"events_sync1", "events_sync2"}


def test_supervisord_conf_loads_with_supervisor(tmp_path: Path) -> None:
    options_module = pytest.importorskip("supervisor.options")
    deployment = generate(tmp_path, "events=2,sync=1")
    out = deployment.out_dir
    options = options_module.ServerOptions()
    options.realize(args=["-c", str(out / "supervisord.conf")])
    assert options.nodaemon
    assert Path(options.logfile).parent == out / "logs"
    assert Path(options.pidfile).parent == out
    [server] = options.server_configs
    assert server["file"] == str(out / "supervisor.sock")
    programs = {
        process.name: process
        for group in options.process_group_configs
        for process in group.process_configs
    }
    assert set(programs) == {"main", "events1", "events2", "sync1", "nginx"}
    shared = str(tmp_path / "homeserver.yaml")
    assert programs["main"].command == (
        f"{sys.executable} -m homeserver --config {shared} --config {out / 'main.yaml'}"
    )
    assert programs["sync1"].command.endswith(
        f"--config {shared} --config {out / 'workers' / 'sync1.yaml'}"
    )
    assert programs["nginx"].command.split()[1:5] == [
        "-c",
        str(out / "nginx.conf"),
        "-p",
        str(out),
    ]
    assert programs["main"].priority < programs["events1"].priority < programs["nginx"].priority
    for program in programs.values():
        assert program.autorestart is not False
        assert program.stopsignal == 15 and program.stopwaitsecs >= 10
        assert Path(program.stdout_logfile).parent == out / "logs"
        assert program.redirect_stderr
        assert program.directory == str(Path.cwd()) or program.name == "nginx"
    parser = options_module.UnhosedConfigParser()
    parser.read(str(out / "supervisord.conf"))
    assert parser.get("supervisorctl", "serverurl") == f"unix://{out / 'supervisor.sock'}"
    assert parser.has_section("rpcinterface:supervisor")


def test_percent_signs_in_paths_are_refused(tmp_path: Path) -> None:
    """supervisor expands %(name)s in some values twice: no escaping survives it."""
    odd = tmp_path / "100%"
    odd.mkdir()
    with pytest.raises(DeployError) as caught:
        generate(odd, "events=1")
    assert str(caught.value) == (
        f"{odd / 'out'}: supervisor's configuration cannot hold a path with '%'"
    )


def _supervisorctl(conf: Path, *args: str) -> tuple[int, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _states(conf: Path) -> dict[str, str]:
    _, out = _supervisorctl(conf, "status")
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


def test_supervisord_runs_and_restarts_the_programs(tmp_path: Path, nginx: str) -> None:
    """supervisord starts every program from the generated file, supervisorctl
    reaches it, and a program killed with SIGKILL is started again. The homeserver
    processes are stand-ins here (the multi-process tests run the real ones)."""
    import signal
    import subprocess

    pytest.importorskip("supervisor")
    stand_in = tmp_path / "stand-in-python"
    stand_in.write_text(
        f"#!{sys.executable}\n"
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "signal.pause()\n",
        encoding="utf-8",
    )
    stand_in.chmod(0o755)
    client_port = free_ports(2 + 3)
    shared = shared_config(tmp_path, client_port=client_port, federation_port=client_port + 1)
    deployment = generate_workers(
        [shared],
        "events=1,sync=1",
        tmp_path / "out",
        base_port=client_port + 2,
        python=str(stand_in),
        nginx=nginx,
        environ=NO_ENV,
    )
    conf = deployment.out_dir / "supervisord.conf"
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        programs = {"main", "events1", "sync1", "nginx"}

        def all_running() -> bool:
            states = _states(conf)
            return set(states) == programs and set(states.values()) == {"RUNNING"}

        _wait_for(all_running, "every program RUNNING")
        _, pid_text = _supervisorctl(conf, "pid", "events1")
        old_pid = int(pid_text.strip())
        os.kill(old_pid, signal.SIGKILL)

        def restarted() -> bool:
            _, text = _supervisorctl(conf, "pid", "events1")
            return text.strip().isdigit() and int(text) not in (0, old_pid) and all_running()

        _wait_for(restarted, "events1 restarted")
        assert (deployment.out_dir / "nginx" / "nginx.pid").is_file()
        assert (deployment.out_dir / "logs" / "events1.log").is_file()
        _supervisorctl(conf, "shutdown")
        supervisord.wait(timeout=60)
        assert not (deployment.out_dir / "nginx" / "nginx.pid").exists()
    finally:
        if supervisord.poll() is None:
            supervisord.terminate()
            supervisord.wait(timeout=60)


# --- nginx, for real ----------------------------------------------------------------


@pytest.fixture
def nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): cannot run nginx -t")
    return binary


def nginx_test(nginx: str, out: Path) -> None:
    result = _run(
        [
            nginx,
            "-t",
            "-c",
            str(out / "nginx.conf"),
            "-p",
            str(out),
            "-e",
            str(out / "logs" / "nginx-error.log"),
        ]
    )
    assert result[0] == 0, result[1]


def _run(argv: list[str]) -> tuple[int, str]:
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stderr


def test_nginx_accepts_the_config(tmp_path: Path, nginx: str) -> None:
    deployment = generate(tmp_path)
    nginx_test(nginx, deployment.out_dir)
    text = (deployment.out_dir / "nginx.conf").read_text(encoding="utf-8")
    assert "daemon off;" in text
    assert f'pid "{deployment.out_dir / "nginx" / "nginx.pid"}";' in text
    assert "client_max_body_size 52428800;" in text
    assert (
        re.search(r"proxy_read_timeout (\d+)s", text)
        and int(
            re.search(r"proxy_read_timeout (\d+)s", text).group(1)  # type: ignore[union-attr]
        )
        >= 300
    )
    assert "listen 127.0.0.1:8008;" in text and "listen 127.0.0.1:8448;" in text
    assert "9100" not in text
    assert "hash $hs_access_token consistent;" in text


def test_nginx_takes_over_tls_listeners(tmp_path: Path, nginx: str) -> None:
    cert, key = make_self_signed_certificate(tmp_path / "tls")
    shared = shared_config(
        tmp_path,
        extra=f"""\
            tls_certificate_path: {cert}
            tls_private_key_path: {key}
            """,
    )
    text = shared.read_text(encoding="utf-8").replace(
        "  - port: 8448\n", "  - port: 8448\n    tls: true\n"
    )
    shared.write_text(text, encoding="utf-8")
    deployment = generate(tmp_path, "events=1", shared=shared)
    nginx_test(nginx, deployment.out_dir)
    conf = (deployment.out_dir / "nginx.conf").read_text(encoding="utf-8")
    assert "listen 127.0.0.1:8448 ssl;" in conf and "listen 127.0.0.1:8008;" in conf
    assert f'ssl_certificate "{cert}";' in conf and f'ssl_certificate_key "{key}";' in conf


@contextlib.asynccontextmanager
async def stub_processes(plan: WorkersPlan) -> AsyncIterator[None]:
    """Every process of the plan answers with its name and the headers it got."""
    runners: list[web.AppRunner] = []

    def answer(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if request.path.endswith("/big"):  # a large download, or the upload echoed
                return web.Response(body=body or b"y" * (3 * 1024**2))
            return web.json_response(
                {
                    "process": name,
                    "path": request.path_qs,
                    "x_forwarded_for": request.headers.get("X-Forwarded-For"),
                    "host": request.headers.get("Host"),
                }
            )

        return handle

    try:
        for process in plan.processes:
            app = web.Application(client_max_size=1024**3)
            app.router.add_route("*", "/{tail:.*}", answer(process.name))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", process.port).start()
        yield
    finally:
        for runner in runners:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def running_nginx(nginx: str, out: Path, port: int) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        nginx,
        "-c",
        str(out / "nginx.conf"),
        "-p",
        str(out),
        "-e",
        str(out / "logs" / "nginx-error.log"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                if process.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError("nginx did not start") from None
                await asyncio.sleep(0.05)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 20)


# (method, path): the upstream table's answer is checked against real nginx
ROUTED = [
    ("GET", "/_matrix/client/v3/sync?since=s1&timeout=30000"),
    ("GET", "/_matrix/client/r0/sync"),
    ("GET", "/_matrix/client/v3/events"),
    ("GET", "/_matrix/client/v3/initialSync"),
    ("GET", "/_matrix/client/v3/rooms/!a:example.org/initialSync"),
    ("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"),
    ("PUT", "/_matrix/client/v3/rooms/!a:example.org/send/m.room.message/txn1"),
    ("PUT", "/_matrix/client/v3/rooms/!a:example.org/state/m.room.topic/"),
    ("GET", "/_matrix/client/v3/rooms/!a:example.org/state/m.room.topic/"),
    ("GET", "/_matrix/client/v3/rooms/!a:example.org/state"),
    ("PUT", "/_matrix/client/v3/rooms/!a:example.org/redact/$e/txn2"),
    ("POST", "/_matrix/client/v3/rooms/!a:example.org/join"),
    ("POST", "/_matrix/client/v3/rooms/!a:example.org/leave"),
    ("POST", "/_matrix/client/v3/rooms/!a:example.org/invite"),
    ("POST", "/_matrix/client/v3/join/%23room:example.org"),
    ("POST", "/_matrix/client/v3/createRoom"),
    ("GET", "/_matrix/client/v3/rooms/!a:example.org/messages?dir=b"),
    ("GET", "/_matrix/client/v3/rooms/!a:example.org/context/$e"),
    ("GET", "/_matrix/client/v3/rooms/!a:example.org/members"),
    ("GET", "/_matrix/client/v3/profile/@a:example.org"),
    ("PUT", "/_matrix/client/v3/profile/@a:example.org/displayname"),
    ("POST", "/_matrix/client/v3/keys/query"),
    ("POST", "/_matrix/client/v3/keys/upload"),
    ("GET", "/_matrix/client/v3/devices"),
    ("PUT", "/_matrix/client/v3/devices/ABC"),
    ("GET", "/_matrix/client/v3/publicRooms"),
    ("POST", "/_matrix/client/v3/publicRooms"),
    ("GET", "/_matrix/client/versions"),
    ("PUT", "/_matrix/client/v3/rooms/!a:example.org/typing/@a:example.org"),
    ("PUT", "/_matrix/client/v3/sendToDevice/m.test/txn3"),
    ("PUT", "/_matrix/client/v3/user/@a:example.org/account_data/m.direct"),
    ("GET", "/_matrix/client/v3/user/@a:example.org/account_data/m.direct"),
    ("PUT", "/_matrix/client/v3/user/@a:example.org/rooms/!a:example.org/tags/u.work"),
    ("GET", "/_matrix/client/v3/user/@a:example.org/rooms/!a:example.org/tags"),
    ("PUT", "/_matrix/client/v3/user/@a:example.org/rooms/!a:example.org/account_data/x"),
    ("PUT", "/_matrix/client/v3/rooms/!a:example.org/send/tags/txn9"),
    ("POST", "/_matrix/client/v3/rooms/!a:example.org/receipt/m.read/$e"),
    ("POST", "/_matrix/client/v3/rooms/!a:example.org/read_markers"),
    ("PUT", "/_matrix/client/v3/presence/@a:example.org/status"),
    ("GET", "/_matrix/client/v3/presence/@a:example.org/status"),
    ("GET", "/_matrix/client/v3/pushrules/"),
    ("PUT", "/_matrix/client/v3/pushrules/global/override/r1"),
    ("POST", "/_matrix/client/v3/login"),
    ("POST", "/_matrix/client/v3/register"),
    ("POST", "/_matrix/client/v3/logout"),
    ("GET", "/_synapse/admin/v1/server_version"),
    ("GET", "/.well-known/matrix/client"),
    ("POST", "/_matrix/media/v3/upload"),
    ("GET", "/_matrix/client/v1/media/download/example.org/abc"),
    ("GET", "/_matrix/media/v3/thumbnail/example.org/abc?width=32&height=32"),
    ("PUT", "/_matrix/federation/v1/send/txn1"),
    ("GET", "/_matrix/federation/v1/version"),
    ("GET", "/_matrix/federation/v1/media/download/abc"),
    ("GET", "/_matrix/federation/v1/openid/userinfo"),
    ("GET", "/_matrix/key/v2/server"),
    ("POST", "/_synapse/replication/send_event/x"),
]


def test_routing_table_examples() -> None:
    """The table as data, for the deployment of the issue (and typing, receipts)."""
    plan = plan_workers(parse_workers_spec(SPEC), 18100)
    expected = {
        "/_matrix/client/v3/sync?since=s1&timeout=30000": "sync",
        "/_matrix/client/v3/rooms/!a:example.org/send/m.room.message/txn1": "events",
        "/_matrix/client/v3/rooms/!a:example.org/messages?dir=b": "client",
        "/_matrix/client/v3/rooms/!a:example.org/typing/@a:example.org": "typing",
        "/_matrix/client/v3/sendToDevice/m.test/txn3": MAIN,
        "/_matrix/client/v3/rooms/!a:example.org/receipt/m.read/$e": "receipts",
        # GET: no account_data writer, so client readers
        "/_matrix/client/v3/user/@a:example.org/account_data/m.direct": "client",
        "/_matrix/media/v3/upload": "media",
        "/_matrix/federation/v1/send/txn1": "federation_inbound",
        "/_matrix/federation/v1/media/download/abc": "media",
        "/_matrix/key/v2/server": "federation_inbound",
        "/_synapse/replication/send_event/x": FORBIDDEN,
        "/_matrix/client/v3/login": MAIN,
        "/_matrix/client/v3/user/@a:example.org/rooms/!a:example.org/tags": "client",
        "/_matrix/client/v3/user/@a:example.org/rooms/!a:example.org/account_data/x": MAIN,
        "/_matrix/client/v3/rooms/!a:example.org/send/tags/txn9": "events",
        "/_synapse/admin/v1/server_version": MAIN,
    }
    methods = dict((path, method) for method, path in ROUTED)
    for path, target in expected.items():
        assert upstream_for(plan, CLIENT, methods[path], path.split("?")[0]) == target, path
    # reads of a state event go to client readers, writes to event writers
    state = "/_matrix/client/v3/rooms/!a:example.org/state/m.room.topic/"
    assert upstream_for(plan, CLIENT, "GET", state) == "client"
    assert upstream_for(plan, CLIENT, "PUT", state) == "events"
    profile = "/_matrix/client/v3/profile/@a:example.org/displayname"
    assert upstream_for(plan, CLIENT, "GET", profile) == "client"
    assert upstream_for(plan, CLIENT, "PUT", profile) == "events"
    # a listener without client: client paths are not found, federation is served
    federation_only = frozenset({"federation", "keys"})
    assert upstream_for(plan, federation_only, "GET", "/_matrix/client/versions") == NOT_FOUND
    assert upstream_for(plan, federation_only, "GET", "/_matrix/media/v3/config") == NOT_FOUND
    assert upstream_for(plan, federation_only, "PUT", "/_matrix/federation/v1/send/t") == (
        "federation_inbound"
    )


def test_roles_nobody_holds_fall_back_to_the_main_process() -> None:
    plan = plan_workers(parse_workers_spec("sync=1"), 18100)
    assert upstream_for(plan, CLIENT, "GET", "/_matrix/client/v3/sync") == "sync"
    for method, path in ROUTED:
        target = upstream_for(plan, CLIENT, method, path.split("?")[0])
        assert target in ("sync", MAIN, FORBIDDEN), (method, path, target)
    # presence reads go to client readers when there is no presence writer
    plan = plan_workers(parse_workers_spec("client=2"), 18100)
    presence = "/_matrix/client/v3/presence/@a:example.org/status"
    assert upstream_for(plan, CLIENT, "GET", presence) == "client"
    assert upstream_for(plan, CLIENT, "PUT", presence) == MAIN


def test_routing_table_is_well_formed() -> None:
    for route in ROUTES:
        re.compile(route.pattern)
        assert route.pattern.startswith("^"), route.pattern
        assert '"' not in route.pattern and "{" not in route.pattern, route.pattern
        assert set(route.read) | set(route.write) <= set(ROLES), route
        assert route.resources <= {"client", "federation", "keys", "media", "openid", "health"}


async def test_nginx_routes_each_path_where_the_table_says(tmp_path: Path, nginx: str) -> None:
    client_port = free_ports(2 + 11)
    base = client_port + 2
    shared = shared_config(
        tmp_path,
        client_port=client_port,
        federation_port=client_port + 1,
        extra="max_upload_size: 2M\nmax_request_body_size: 1K\n",
    )
    deployment = generate(tmp_path, shared=shared, base_port=base)
    plan = deployment.plan
    names = {
        target: {p.name for p in ([plan.main] if target == MAIN else plan.holding(target))}
        for target in (MAIN, *ROLES)
    }
    config = load_config(shared, NO_ENV)
    listeners = {
        listener.port: frozenset(n for r in listener.resources for n in r.names)
        for listener in public_listeners(config)
    }
    async with stub_processes(plan), running_nginx(nginx, deployment.out_dir, client_port):
        async with aiohttp.ClientSession() as session:
            for port, resources in listeners.items():
                for method, path in ROUTED:
                    target = upstream_for(plan, resources, method, path.split("?")[0])
                    url = f"http://127.0.0.1:{port}{path}"
                    async with session.request(method, url, data=b"{}") as response:
                        body = await response.text()
                    where = f"{method} {path} on {port}"
                    if target == FORBIDDEN:
                        assert response.status == 403, where
                        assert json.loads(body)["errcode"] == "M_FORBIDDEN"
                    elif target == NOT_FOUND:
                        assert response.status == 404, where
                        assert json.loads(body)["errcode"] == "M_UNRECOGNIZED"
                    else:
                        assert response.status == 200, (where, body)
                        answer = json.loads(body)
                        assert answer["process"] in names[target], (where, target, answer)
                        assert answer["path"] == path, where  # passed on unchanged

            # a room's events go straight to the writer the servers pick for it
            writers = load_config([shared, deployment.out_dir / "main.yaml"], NO_ENV).worker
            client = f"http://127.0.0.1:{client_port}/_matrix/client"
            seen_writers = set()
            for n in range(40):
                room = f"!room{n}:example.org"
                expected_writer = writers.events_writer_for(room)
                seen_writers.add(expected_writer)
                for written in (room, quote(room, safe="")):
                    for method, url in (
                        ("PUT", f"{client}/v3/rooms/{written}/send/m.room.message/t{n}"),
                        ("PUT", f"{client}/r0/rooms/{written}/state/m.room.topic/"),
                        ("POST", f"{client}/v3/rooms/{written}/invite"),
                        ("POST", f"{client}/api/v1/join/{written}"),
                    ):
                        async with session.request(method, url, data=b"{}") as response:
                            answer = await response.json()
                        assert answer["process"] == expected_writer, (method, url)
            assert seen_writers == {"events1", "events2"}

            # sync is sticky by access token, from the header or the query string
            sync = f"http://127.0.0.1:{client_port}/_matrix/client/v3/sync"
            chosen: dict[str, set[str]] = {}
            for n in range(16):
                token = f"syt_token_{n}"
                for _ in range(3):
                    headers = {"Authorization": f"Bearer {token}"}
                    async with session.get(sync, headers=headers) as response:
                        chosen.setdefault(token, set()).add((await response.json())["process"])
                    async with session.get(sync, params={"access_token": token}) as response:
                        chosen[token].add((await response.json())["process"])
            assert all(len(processes) == 1 for processes in chosen.values()), chosen
            assert set().union(*chosen.values()) == {"sync1", "sync2"}

            # the client's address replaces any X-Forwarded-For it sends; Host is kept
            versions = f"http://127.0.0.1:{client_port}/_matrix/client/versions"
            async with session.get(versions, headers={"X-Forwarded-For": "6.6.6.6"}) as response:
                answer = await response.json()
            assert answer["x_forwarded_for"] == "127.0.0.1"
            assert answer["host"] == f"127.0.0.1:{client_port}"

            # bodies above the larger of max_upload_size and max_request_body_size
            # are refused; large bodies pass both ways (no temporary files, which
            # nginx's unprivileged workers might not be allowed to write)
            media = f"http://127.0.0.1:{client_port}/_matrix/media/v3"
            upload = b"".join(bytes([n % 251]) for n in range(2 * 1024**2))
            async with session.post(f"{media}/upload/big", data=upload) as response:
                assert response.status == 200
                assert await response.read() == upload
            async with session.post(f"{media}/upload", data=upload + b"x") as response:
                assert response.status == 413
            async with session.get(f"{media}/download/example.org/big") as response:
                assert response.status == 200
                assert await response.read() == b"y" * (3 * 1024**2)


# --- bad requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "--workers: give at least one role, like events=2,sync=2"),
        ("events=2,", "--workers: empty entry in 'events=2,'"),
        ("eventz=2", '--workers: unknown role "eventz" (roles: ' + ", ".join(ROLES) + ")"),
        ("events=0", '--workers: "events=0": the count must be a positive integer'),
        ("events=-1", '--workers: "events=-1": the count must be a positive integer'),
        ("events=two", '--workers: "events=two": the count must be a positive integer'),
        ("events=", '--workers: "events=": the count must be a positive integer'),
        ("events=1,events=2", '--workers: role "events" is given twice'),
        ("events+sync=1,sync=2", '--workers: role "sync" is given twice'),
        ("typing=2", '--workers: "typing=2": typing runs in exactly one process; give typing=1'),
        (
            "background=3",
            '--workers: "background=3": background runs in exactly one process; give background=1',
        ),
        (
            "events+receipts=2",
            '--workers: "events+receipts=2": receipts runs in exactly one process; '
            "give events+receipts=1",
        ),
    ],
)
def test_bad_workers_spec(spec: str, expected: str) -> None:
    with pytest.raises(DeployError) as caught:
        parse_workers_spec(spec)
    assert str(caught.value) == expected


def test_every_role_is_accepted() -> None:
    groups = parse_workers_spec(",".join(ROLES))
    assert [group.roles for group in groups] == [(role,) for role in ROLES]


def test_base_port_out_of_range() -> None:
    groups = parse_workers_spec("events=3")
    with pytest.raises(DeployError) as caught:
        plan_workers(groups, 65534)
    assert str(caught.value) == (
        "--base-port: 4 processes need ports 65534 to 65537, which must lie from 1024 to 65535"
    )
    with pytest.raises(DeployError, match=r"^--base-port: 4 processes need ports 80 to 83"):
        plan_workers(groups, 80)


def test_bad_shared_configs(tmp_path: Path) -> None:
    sqlite = shared_config(tmp_path, database="{name: sqlite3}")
    with pytest.raises(DeployError) as caught:
        generate(tmp_path, shared=sqlite)
    assert str(caught.value) == (
        f"--config {sqlite}: workers need PostgreSQL: the database is SQLite, which is "
        "single-process; set database.name: psycopg (or HOMESERVER_DATABASE_URL)"
    )
    worker = shared_config(
        tmp_path,
        extra="""\
            worker_app: synapse.app.generic_worker
            worker_name: w1
            redis: {enabled: true}
            instance_map: {main: {host: 127.0.0.1, port: 18100}}
            """,
    )
    with pytest.raises(DeployError) as caught:
        generate(tmp_path, shared=worker)
    assert str(caught.value) == (
        f"--config {worker}: this is a worker's config (w1); give the shared config of the "
        "main process"
    )
    metrics_only = tmp_path / "metrics.yaml"
    metrics_only.write_text(
        "server_name: example.org\n"
        "database: {name: psycopg, args: {dbname: hs}}\n"
        "listeners: [{port: 9100, type: metrics}]\n",
        encoding="utf-8",
    )
    with pytest.raises(DeployError) as caught:
        generate(tmp_path, shared=metrics_only)
    assert str(caught.value) == (
        f"--config {metrics_only}: no http listener serves client or federation: nothing "
        "for nginx to take over"
    )
    with pytest.raises(DeployError) as caught:
        generate(tmp_path, base_port=8440)
    assert str(caught.value) == (
        "--base-port: port 8448 (media1) is a listener's port in the shared config; "
        "choose another --base-port"
    )
    with pytest.raises(ConfigError, match=r"^config file not found: "):
        generate(tmp_path, shared=tmp_path / "missing.yaml")


def test_database_from_the_environment(tmp_path: Path) -> None:
    shared = shared_config(tmp_path, database="{name: sqlite3}")
    deployment = generate_workers(
        [shared],
        "events=1",
        tmp_path / "out",
        environ={"HOMESERVER_DATABASE_URL": "postgresql://postgres@127.0.0.1/hs"},
    )
    assert deployment.database_from_environment


def test_out_not_writable(tmp_path: Path) -> None:
    in_the_way = tmp_path / "file"
    in_the_way.write_text("", encoding="utf-8")
    with pytest.raises(DeployError) as caught:
        generate(tmp_path, out=in_the_way / "out")
    message = str(caught.value)
    assert message.startswith(f"--out {in_the_way / 'out'}: cannot write ")
    assert "Not a directory" in message and "\n" not in message


# --- the command line ---------------------------------------------------------------


@pytest.fixture
def no_database_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HOMESERVER_DATABASE_URL", raising=False)
    yield


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_generates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, no_database_url: None
) -> None:
    shared = shared_config(tmp_path)
    out = tmp_path / "deploy"
    status, stdout, stderr = run_cli(
        capsys,
        "generate-workers",
        "--config",
        shared,
        "--workers",
        "events=2,sync=2,client=1,federation_inbound=1,federation_sender=1,media=1",
        "--out",
        out,
        "--base-port",
        "19000",
    )
    assert status == 0, stderr
    assert f"run: supervisord -c {out / 'supervisord.conf'}" in stdout
    assert "processes: main, events1, events2, sync1, sync2, client1" in stdout
    main_yaml = yaml.safe_load((out / "main.yaml").read_text(encoding="utf-8"))
    assert main_yaml["instance_map"]["main"] == {"host": "127.0.0.1", "port": 19000}
    assert (out / "workers" / "media1.yaml").is_file()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--workers", "events=0"], '--workers: "events=0": the count must be a positive integer'),
        (["--workers", "nope"], '--workers: unknown role "nope"'),
        (["--workers", "events", "--base-port", "x"], "argument --base-port: invalid int value"),
        ([], "the following arguments are required: --workers"),
    ],
)
def test_cli_bad_requests(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    no_database_url: None,
    argv: list[str],
    expected: str,
) -> None:
    shared = shared_config(tmp_path)
    status, _, stderr = run_cli(
        capsys, "generate-workers", "-c", shared, "--out", tmp_path / "o", *argv
    )
    assert status == 1
    [line] = stderr.strip().splitlines()
    assert line.startswith("homeserver: ") and expected in line, line


def test_cli_refuses_sqlite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, no_database_url: None
) -> None:
    shared = shared_config(tmp_path, database="{name: sqlite3}")
    status, _, stderr = run_cli(
        capsys, "generate-workers", "-c", shared, "--workers", "events=2", "--out", tmp_path / "o"
    )
    assert status == 1
    assert stderr.strip() == (
        f"homeserver: --config {shared}: workers need PostgreSQL: the database is SQLite, "
        "which is single-process; set database.name: psycopg (or HOMESERVER_DATABASE_URL)"
    )
    assert not (tmp_path / "o").exists()
