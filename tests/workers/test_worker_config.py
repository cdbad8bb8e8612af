"""The worker options (Synapse's names), several --config files, and every bad input."""

from __future__ import annotations

import re
import textwrap
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.__main__ import main
from homeserver.config import (
    ConfigError,
    HomeserverConfig,
    InstanceLocation,
    ListenerConfig,
    ListenerResource,
    RedisConfig,
    StreamWriters,
    WorkerConfig,
    load_config,
    parse_config,
)
from homeserver.config.workers import STREAMS, room_writer_index, shard_for

REPO = Path(__file__).resolve().parents[2]
NO_ENV: dict[str, str] = {}
PG = {"name": "psycopg", "args": {"dbname": "hs", "user": "synapse"}}

SHARED = """\
server_name: example.org
database: {name: psycopg, args: {dbname: hs, user: synapse}}
redis: {enabled: true, host: redis.internal, port: 6380, password: sesame, dbid: 3}
listeners:
  - port: 8008
    resources: [{names: [client, federation]}]
  - port: 18100
    resources: [{names: [replication]}]
instance_map:
  main: {host: 127.0.0.1, port: 18100}
  writer1: {host: 127.0.0.1, port: 18101}
  writer2: {host: 127.0.0.1, port: 18102, tls: true}
  typing1: {host: 10.0.0.5, port: 18103}
stream_writers:
  events: [writer1, writer2]
  typing: typing1
  to_device: [master]
federation_sender_instances: [sender1, sender2]
pusher_instances: [pusher1]
run_background_tasks_on: background1
media_instance_running_background_jobs: media1
notify_appservices_from_worker: appservice1
update_user_directory_from_worker: background1
worker_replication_secret: "s3cret"
log_config: /etc/hs/main.log.yaml
pid_file: /run/hs-main.pid
"""

WORKER = """\
worker_app: synapse.app.generic_worker
worker_name: writer1
worker_listeners:
  - port: 18101
    x_forwarded: true
    resources: [{names: [client, replication]}]
worker_log_config: /etc/hs/writer1.log.yaml
worker_pid_file: /run/hs-writer1.pid
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


INSTANCES: dict[str, Any] = yaml.safe_load(SHARED)["instance_map"]


def with_instances(**changes: Any) -> dict[str, Any]:
    """The shared instance_map with some entries changed."""
    return {**INSTANCES, **changes}


def shared_raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(SHARED)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def worker_raw(**changes: Any) -> dict[str, Any]:
    raw = shared_raw()
    raw.update(yaml.safe_load(WORKER))
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def error_of(raw: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, NO_ENV if environ is None else environ)
    return str(caught.value)


# --- the single process -------------------------------------------------------------


def test_default_is_the_single_main_process() -> None:
    config = parse_config({"server_name": "example.org"}, NO_ENV)
    worker = config.worker
    assert worker == WorkerConfig()
    assert worker.is_main and not worker.is_worker and not worker.multi_process
    assert worker.instance_name == "master"
    assert all(worker.writes(stream) for stream in STREAMS)
    assert worker.events_writer_for("!room:example.org") == "master"
    assert worker.sends_federation and worker.runs_pushers and worker.runs_background_tasks
    assert worker.runs_media_background_jobs and worker.notifies_appservices
    assert worker.updates_user_directory
    assert worker.federation_sender_for("remote.example") == "master"
    assert worker.replication_secret is None and worker.log_config is None
    assert config.redis == RedisConfig()
    assert config.ignored_options == ()


def test_main_process_naming_itself_stays_single_process() -> None:
    """Options that name only master (or instance_map.main) need no PostgreSQL."""
    config = parse_config(
        {
            "server_name": "example.org",
            "worker_app": "synapse.app.homeserver",
            "instance_map": {"main": {"host": "127.0.0.1", "port": 18100}},
            "stream_writers": {"events": "master", "typing": ["master"]},
            "federation_sender_instances": ["master"],
            "run_background_tasks_on": "master",
            "notify_appservices_from_worker": "master",
        },
        NO_ENV,
    )
    assert config.worker.is_main and not config.worker.multi_process
    assert config.worker.location("master") == InstanceLocation("127.0.0.1", 18100)


# --- every option -------------------------------------------------------------------


def test_shared_config_on_the_main_process(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "homeserver.yaml", SHARED), NO_ENV)
    worker = config.worker
    assert worker.is_main and worker.multi_process
    assert worker.instance_name == "master"
    assert dict(worker.instance_map) == {
        "main": InstanceLocation("127.0.0.1", 18100),
        "writer1": InstanceLocation("127.0.0.1", 18101),
        "writer2": InstanceLocation("127.0.0.1", 18102, tls=True),
        "typing1": InstanceLocation("10.0.0.5", 18103),
    }
    assert worker.stream_writers == StreamWriters(
        events=("writer1", "writer2"), typing=("typing1",)
    )
    assert worker.federation_sender_instances == ("sender1", "sender2")
    assert worker.pusher_instances == ("pusher1",)
    assert worker.run_background_tasks_on == "background1"
    assert worker.media_instance_running_background_jobs == "media1"
    assert worker.notify_appservices_from_worker == "appservice1"
    assert worker.update_user_directory_from_worker == "background1"
    assert worker.replication_secret == "s3cret"
    assert "s3cret" not in repr(worker)
    # the main process keeps its own listeners, log config and PID file
    assert [listener.port for listener in config.listeners] == [8008, 18100]
    assert config.listeners[1].serves("replication")
    assert config.log_config == Path("/etc/hs/main.log.yaml")
    assert config.pid_file == Path("/run/hs-main.pid")
    assert config.redis == RedisConfig(
        enabled=True, host="redis.internal", port=6380, password="sesame", dbid=3
    )
    # it writes no events, and hands every job to a worker
    assert not worker.writes("events") and not worker.writes("typing")
    assert worker.writes("to_device") and worker.writes("presence")
    assert not worker.sends_federation and not worker.runs_pushers
    assert not worker.runs_background_tasks and not worker.runs_media_background_jobs
    assert not worker.notifies_appservices and not worker.updates_user_directory
    assert worker.location("master") == InstanceLocation("127.0.0.1", 18100)
    assert worker.location("writer2").base_url == "https://127.0.0.1:18102"
    with pytest.raises(KeyError, match="sender1"):
        worker.location("sender1")
    assert config.ignored_options == ()


def test_worker_file_over_the_shared_one(tmp_path: Path) -> None:
    shared = write(tmp_path, "homeserver.yaml", SHARED)
    config = load_config([shared, write(tmp_path, "writer1.yaml", WORKER)], NO_ENV)
    worker = config.worker
    assert worker.is_worker and not worker.is_main and worker.multi_process
    assert worker.app == "generic_worker" and worker.instance_name == "writer1"
    assert worker.writes("events") and not worker.writes("typing")
    assert worker.log_config == Path("/etc/hs/writer1.log.yaml")
    # worker_listeners, worker_log_config and worker_pid_file replace the main ones
    assert config.listeners == (
        ListenerConfig(
            port=18101,
            x_forwarded=True,
            resources=(ListenerResource(names=("client", "replication")),),
        ),
    )
    assert config.log_config == Path("/etc/hs/writer1.log.yaml")
    assert config.pid_file == Path("/run/hs-writer1.pid")
    # the shared options are the same in every process
    main = load_config(shared, NO_ENV)
    assert worker.stream_writers == main.worker.stream_writers
    assert worker.instance_map == main.worker.instance_map


def test_worker_without_worker_listeners_log_config_or_pid_file() -> None:
    raw = worker_raw(worker_listeners=None, worker_log_config=None, worker_pid_file=None)
    config = parse_config(raw, NO_ENV)
    assert config.listeners == ()
    assert config.log_config is None and config.pid_file is None


def test_duties_of_workers() -> None:
    def on(name: str) -> WorkerConfig:
        return parse_config(worker_raw(worker_name=name), NO_ENV).worker

    assert on("sender2").sends_federation and not on("writer1").sends_federation
    assert on("pusher1").runs_pushers
    assert on("background1").runs_background_tasks and on("background1").updates_user_directory
    assert on("media1").runs_media_background_jobs
    assert on("appservice1").notifies_appservices
    assert on("typing1").writes("typing")


@pytest.mark.parametrize(
    "app",
    [
        "synapse.app.generic_worker",
        "synapse.app.client_reader",
        "synapse.app.media_repository",
        "synapse.app.synchrotron",
        "synapse.app.event_creator",
        "synapse.app.federation_reader",
        "synapse.app.frontend_proxy",
        "synapse.app.user_dir",
        "synapse.app.appservice",
    ],
)
def test_worker_apps_read_as_generic_worker(app: str) -> None:
    assert parse_config(worker_raw(worker_app=app), NO_ENV).worker.app == "generic_worker"


def test_synapse_app_homeserver_is_the_main_process() -> None:
    raw = shared_raw(worker_app="synapse.app.homeserver")
    assert parse_config(raw, NO_ENV).worker.is_main


def test_stream_writers_string_or_list() -> None:
    raw = shared_raw(stream_writers={"events": "writer1", "receipts": ["writer2"]})
    writers = parse_config(raw, NO_ENV).worker.stream_writers
    assert writers.events == ("writer1",) and writers.receipts == ("writer2",)
    assert writers.writers("typing") == ("master",)
    with pytest.raises(KeyError):
        writers.writers("thread_subscriptions")


def test_events_writer_for_a_room_is_a_stable_hash() -> None:
    """nginx's hash (Cache::Memcached over CRC-32) of the room ID over the writers
    in the order listed: the same in every process and every run (Python's hash()
    is salted per process), and what an nginx ``hash $room_id`` upstream picks."""
    worker = parse_config(shared_raw(), NO_ENV).worker
    rooms = [f"!room{n}:example.org" for n in range(200)]
    for room in rooms:
        index = ((zlib.crc32(room.encode()) >> 16) & 0x7FFF) % 2
        assert worker.events_writer_for(room) == ("writer1", "writer2")[index]
        assert room_writer_index(room, 2) == index
    chosen = {worker.events_writer_for(room) for room in rooms}
    assert chosen == {"writer1", "writer2"}
    # known values, so that a change of formula is seen
    assert (
        room_writer_index("!a:example.org", 7)
        == ((zlib.crc32(b"!a:example.org") >> 16) & 0x7FFF) % 7
    )
    assert shard_for((), "x") is None
    assert worker.federation_sender_for("matrix.org") in ("sender1", "sender2")
    assert worker.pusher_for("@alice:example.org") == "pusher1"


def test_legacy_send_federation_and_start_pushers() -> None:
    """Synapse's older booleans: false on the main process hands the duty to the
    worker of the old specialised app."""
    base = shared_raw(federation_sender_instances=None, pusher_instances=None)
    base.update(send_federation=False, start_pushers=False)
    main = parse_config(base, NO_ENV).worker
    assert main.federation_sender_instances == () and not main.sends_federation
    assert main.pusher_instances == () and not main.runs_pushers
    sender = parse_config(
        {**base, **yaml.safe_load(WORKER), "worker_app": "synapse.app.federation_sender"}, NO_ENV
    ).worker
    assert sender.sends_federation and sender.federation_sender_instances == ("writer1",)
    pusher = parse_config(
        {**base, **yaml.safe_load(WORKER), "worker_app": "synapse.app.pusher"}, NO_ENV
    ).worker
    assert pusher.runs_pushers and not pusher.sends_federation
    # true is the default, and the modern lists win over the old booleans
    assert parse_config(
        shared_raw(send_federation=True), NO_ENV
    ).worker.federation_sender_instances == (
        "sender1",
        "sender2",
    )


def test_replication_secret_from_a_file(tmp_path: Path) -> None:
    secret_file = write(tmp_path, "replication.secret", "from-a-file\n")
    raw = shared_raw(
        worker_replication_secret=None, worker_replication_secret_path=str(secret_file)
    )
    assert parse_config(raw, NO_ENV).worker.replication_secret == "from-a-file"


def test_database_url_in_the_environment_is_postgres_enough() -> None:
    raw = shared_raw(database=None)
    config = parse_config(raw, {"HOMESERVER_DATABASE_URL": "postgresql://u@localhost/hs"})
    assert config.worker.multi_process and config.database.engine == "postgres"


def test_synapse_worker_options_not_implemented_are_warnings() -> None:
    raw = worker_raw(
        worker_daemonize=False,
        worker_manhole=9000,
        worker_main_http_uri="http://127.0.0.1:8008",
        stream_writers={"events": "writer1", "thread_subscriptions": "master"},
        redis={"enabled": True, "use_tls": False},
    )
    warned = sorted(warning.split(":")[0] for warning in parse_config(raw, NO_ENV).ignored_options)
    assert warned == [
        "redis.use_tls",
        "stream_writers.thread_subscriptions",
        "worker_daemonize",
        "worker_main_http_uri",
        "worker_manhole",
    ]


# --- several config files -----------------------------------------------------------


def test_later_files_replace_top_level_keys(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "a.yaml",
        """\
        server_name: example.org
        presence: {enabled: false, idle_timeout: 1000}
        max_upload_size: 1M
        """,
    )
    second = write(tmp_path, "b.yaml", "presence: {offline_timeout: 2000}\nmax_upload_size: 2M\n")
    empty = write(tmp_path, "empty.yaml", "")
    config = load_config([first, empty, second], NO_ENV)
    assert config.max_upload_size == 2 * 1024**2
    # sections are replaced whole, not merged (as Synapse)
    assert config.presence.enabled and config.presence.idle_timeout == 300_000
    assert config.presence.offline_timeout == 2000
    assert load_config([second, first], NO_ENV).max_upload_size == 1024**2
    assert load_config([str(first)], NO_ENV) == load_config(first, NO_ENV)
    assert load_config((first,), NO_ENV) == load_config(str(first), NO_ENV)


def test_errors_of_merged_files_name_the_key(tmp_path: Path) -> None:
    shared = write(tmp_path, "homeserver.yaml", SHARED)
    bad = write(tmp_path, "w.yaml", WORKER + "worker_listeners: [{port: abc, resources: []}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config([shared, bad], NO_ENV)
    assert str(caught.value) == (
        'worker_listeners[0].port: expected an integer, got "abc"; '
        "worker_listeners[0].resources: at least one resource is required"
    )


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ("[1, 2]\n", "{second}: expected a mapping of options, got a list"),
        ("just text\n", '{second}: expected a mapping of options, got "just text"'),
        ("a: [\n", "invalid YAML in {second}: "),
        (None, "config file not found: {second}"),
    ],
)
def test_bad_second_file(tmp_path: Path, second: str | None, expected: str) -> None:
    first = write(tmp_path, "a.yaml", "server_name: example.org\n")
    path = tmp_path / "b.yaml" if second is None else write(tmp_path, "b.yaml", second)
    with pytest.raises(ConfigError) as caught:
        load_config([first, path], NO_ENV)
    assert str(caught.value).startswith(expected.format(second=path))
    assert "\n" not in str(caught.value)


def test_no_config_file() -> None:
    with pytest.raises(ConfigError, match=r"^no config file given$"):
        load_config([], NO_ENV)


def test_single_file_messages_are_unchanged(tmp_path: Path) -> None:
    listed = write(tmp_path, "a.yaml", "[1]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(listed, NO_ENV)
    assert str(caught.value) == (
        "the config file: expected a mapping, got a list; server_name: this option is required"
    )


# --- the command line ---------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{a}", "--config", "{b}"],
        ["-c", "{a}", "-c", "{b}"],
        ["run", "--config", "{a}", "-c", "{b}"],
        ["-c", "{a}", "run", "-c", "{b}"],
    ],
)
def test_cli_merges_several_config_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    """The second file is read: its bad option stops the server with one line."""
    a = write(
        tmp_path,
        "a.yaml",
        f"server_name: example.org\ndatabase: {{args: {{database: {tmp_path}/hs.db}}}}\n",
    )
    b = write(tmp_path, "b.yaml", "worker_app: synapse.app.generic_worker\nworker_name: w1\n")
    status, _, err = run_cli(capsys, *(arg.format(a=a, b=b) for arg in argv))
    assert status == 1
    assert err.strip() == (
        "homeserver: worker_app: workers need PostgreSQL: SQLite is single-process; "
        "set database.name: psycopg (or HOMESERVER_DATABASE_URL); "
        "worker_app: workers need Redis: set redis.enabled: true; "
        "instance_map: a worker needs the main process's replication address as "
        "instance_map.main"
    )


def test_cli_command_reads_several_config_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOMESERVER_DATABASE_URL", raising=False)
    a = write(tmp_path, "a.yaml", "server_name: cli.test\nlog_level: WARNING\n")
    b = write(
        tmp_path,
        "b.yaml",
        f"database: {{name: sqlite3, args: {{database: {tmp_path / 'hs.db'}}}}}\n"
        f"signing_key_path: {tmp_path / 'signing.key'}\n"
        f"media_store_path: {tmp_path / 'media'}\n",
    )
    status, out, err = run_cli(capsys, "-c", a, "registration-token", "-c", b, "tok1")
    assert status == 0, err
    assert out.strip() == "tok1"
    assert (tmp_path / "hs.db").is_file()


# --- bad inputs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"worker_name": None},
            "worker_name: required for a worker (worker_app: synapse.app.generic_worker)",
        ),
        (
            {"worker_name": "master"},
            'worker_name: "master" is the main process\'s name; choose another worker_name',
        ),
        (
            {"worker_name": "main"},
            'worker_name: "main" is the main process\'s name; choose another worker_name',
        ),
        (
            {"worker_name": "a b"},
            "worker_name: expected an instance name of letters, digits, '_', '.' and '-', "
            'got "a b"',
        ),
        ({"worker_name": 5}, "worker_name: expected a string, got 5"),
        (
            {"worker_app": "synapse.app.admin_cmd"},
            'worker_app: expected "synapse.app.generic_worker" or "synapse.app.homeserver", '
            'got "synapse.app.admin_cmd"',
        ),
        (
            {"instance_map": {k: v for k, v in INSTANCES.items() if k != "main"}},
            "instance_map: a worker needs the main process's replication address as "
            "instance_map.main",
        ),
        (
            {"worker_replication_host": "127.0.0.1"},
            "worker_replication_host: no longer supported (as in Synapse): give the main "
            "process's replication host and port as instance_map.main in the shared config",
        ),
        (
            {"worker_replication_http_port": 9093},
            "worker_replication_http_port: no longer supported (as in Synapse): give the main "
            "process's replication host and port as instance_map.main in the shared config",
        ),
        (
            {
                "worker_listeners": [
                    {"port": 8448, "tls": True, "resources": [{"names": ["client"]}]}
                ]
            },
            "worker_listeners[0].tls: tls_certificate_path and tls_private_key_path must be set "
            "when a listener has tls: true",
        ),
        (
            {"worker_listeners": [{"port": 1, "resources": [{"names": ["replicaton"]}]}]},
            'worker_listeners[0].resources[0].names[0]: expected one of "client", "federation", '
            '"keys", "media", "health", "openid", "metrics", "consent", "replication", '
            'got "replicaton"',
        ),
        (
            {"worker_listeners": [{"port": 1, "resources": [{"names": ["client"]}], "bogus": 1}]},
            "worker_listeners[0].bogus: unknown option",
        ),
        ({"worker_log_config": 3}, "worker_log_config: expected a string, got 3"),
        ({"worker_nam": "x"}, 'worker_nam: unknown option (did you mean "worker_name"?)'),
    ],
)
def test_bad_worker_options(changes: dict[str, Any], expected: str) -> None:
    assert error_of(worker_raw(**changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"database": None},
            "instance_map.writer1: workers need PostgreSQL: SQLite is single-process; "
            "set database.name: psycopg (or HOMESERVER_DATABASE_URL)",
        ),
        (
            {"redis": {"enabled": False}},
            "instance_map.writer1: workers need Redis: set redis.enabled: true",
        ),
        (
            {"stream_writers": {"events": ["writer1", "writer3"]}},
            'stream_writers.events: "writer3" is not in instance_map (a stream writer must be '
            "reachable at its replication address)",
        ),
        (
            {"stream_writers": {"typing": ["writer1", "writer2"]}},
            "stream_writers.typing: typing has exactly one writer (as in Synapse); got 2",
        ),
        (
            {"stream_writers": {"push_rules": ["writer1", "writer2"]}},
            "stream_writers.push_rules: push_rules has exactly one writer (as in Synapse); got 2",
        ),
        (
            {"stream_writers": {"receipts": ["writer1", "writer2"]}},
            "stream_writers.receipts: this server supports one writer for receipts "
            "(Synapse allows several); got 2",
        ),
        (
            {"stream_writers": {"device_lists": ["writer1", "writer2"]}},
            "stream_writers.device_lists: this server supports one writer for device_lists "
            "(Synapse allows several); got 2",
        ),
        (
            {"stream_writers": {"events": []}},
            "stream_writers.events: at least one writer is required",
        ),
        (
            {"stream_writers": {"events": ["writer1", "writer1"]}},
            'stream_writers.events[1]: "writer1" is listed twice',
        ),
        (
            {"stream_writers": {"events": {"a": 1}}},
            "stream_writers.events: expected an instance name or a list of them, got a mapping",
        ),
        (
            {"stream_writers": {"events": ["writer1", 7]}},
            "stream_writers.events[1]: expected a string, got 7",
        ),
        (
            {"stream_writers": {"event": "writer1"}},
            'stream_writers.event: unknown option (did you mean "events"?)',
        ),
        ({"stream_writers": "writer1"}, 'stream_writers: expected a mapping, got "writer1"'),
        (
            {"instance_map": with_instances(main={"host": "127.0.0.1"})},
            "instance_map.main.port: this option is required",
        ),
        (
            {"instance_map": with_instances(main={"host": "127.0.0.1", "port": "x"})},
            'instance_map.main.port: expected an integer, got "x"',
        ),
        (
            {"instance_map": with_instances(main={"path": "/run/main.sock"})},
            "instance_map.main.path: Unix socket addresses are not supported; give host and "
            "port; instance_map.main.host: this option is required; "
            "instance_map.main.port: this option is required",
        ),
        (
            {"instance_map": with_instances(main={"host": "h", "port": 1, "tls": "yes"})},
            'instance_map.main.tls: expected true or false, got "yes"',
        ),
        (
            {"instance_map": with_instances(master={"host": "h", "port": 2})},
            'instance_map.master: give the main process once, as "main"',
        ),
        (
            {"instance_map": with_instances(**{"a/b": {"host": "h", "port": 1}})},
            "instance_map.a/b: expected an instance name of letters, digits, '_', '.' and '-', "
            'got "a/b"',
        ),
        (
            {"federation_sender_instances": []},
            "federation_sender_instances: at least one instance is required",
        ),
        (
            {"pusher_instances": "p 1"},
            "pusher_instances: expected an instance name of letters, digits, '_', '.' and '-', got \"p 1\"",
        ),
        ({"send_federation": "no"}, 'send_federation: expected true or false, got "no"'),
        (
            {"run_background_tasks_on": ["bg"]},
            "run_background_tasks_on: expected a string, got a list",
        ),
        (
            {"notify_appservices_from_worker": ""},
            "notify_appservices_from_worker: expected an instance name of letters, digits, '_', '.' and '-', got \"\"",
        ),
        ({"worker_replication_secret": ""}, "worker_replication_secret: must not be empty"),
        (
            {"worker_replication_secret_path": "/nonexistent/secret"},
            "worker_replication_secret_path: give either worker_replication_secret or "
            "worker_replication_secret_path",
        ),
        (
            {"redis": {"enabled": True, "dbid": -1}},
            "redis.dbid: expected a non-negative integer, got -1",
        ),
        (
            {"redis": {"enabled": "yes"}},
            'redis.enabled: expected true or false, got "yes"; '
            "instance_map.writer1: workers need Redis: set redis.enabled: true",
        ),
        (
            {"worker_listeners": [{"port": 1, "resources": [{"names": ["client"]}]}]},
            "worker_listeners: only read by a worker; the main process uses listeners",
        ),
        (
            {"worker_log_config": "/x.yaml"},
            "worker_log_config: only read by a worker; the main process uses log_config",
        ),
        (
            {"worker_pid_file": "/x.pid"},
            "worker_pid_file: only read by a worker; the main process uses pid_file",
        ),
        (
            {"worker_name": "w1"},
            "worker_name: only a worker has a name (worker_app: synapse.app.generic_worker); "
            'the main process is "master"',
        ),
    ],
)
def test_bad_shared_options(changes: dict[str, Any], expected: str) -> None:
    assert error_of(shared_raw(**changes)) == expected


def test_replication_secret_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    message = error_of(
        shared_raw(worker_replication_secret=None, worker_replication_secret_path=str(missing))
    )
    assert message.startswith(f"worker_replication_secret_path: cannot read {missing}: ")
    empty = write(tmp_path, "empty", "\n")
    assert (
        error_of(
            shared_raw(worker_replication_secret=None, worker_replication_secret_path=str(empty))
        )
        == f"worker_replication_secret_path: {empty} is empty"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"federation_sender_instances": ["sender1"]}, "federation_sender_instances"),
        ({"pusher_instances": ["pusher1"]}, "pusher_instances"),
        ({"run_background_tasks_on": "bg1"}, "run_background_tasks_on"),
        (
            {"media_instance_running_background_jobs": "m1"},
            "media_instance_running_background_jobs",
        ),
        ({"notify_appservices_from_worker": "as1"}, "notify_appservices_from_worker"),
        ({"update_user_directory_from_worker": "ud1"}, "update_user_directory_from_worker"),
    ],
)
def test_naming_another_process_needs_postgres_and_redis(
    raw: dict[str, Any], expected: str
) -> None:
    message = error_of({"server_name": "example.org", **raw})
    assert message == (
        f"{expected}: workers need PostgreSQL: SQLite is single-process; "
        "set database.name: psycopg (or HOMESERVER_DATABASE_URL); "
        f"{expected}: workers need Redis: set redis.enabled: true"
    )
    # with PostgreSQL and Redis it is accepted
    config = parse_config(
        {"server_name": "example.org", "database": PG, "redis": {"enabled": True}, **raw}, NO_ENV
    )
    assert config.worker.multi_process


def test_legacy_worker_app_needs_the_boolean_off() -> None:
    raw = worker_raw(worker_app="synapse.app.federation_sender", federation_sender_instances=None)
    assert error_of(raw) == (
        "send_federation: must be false in the shared config for a "
        "synapse.app.federation_sender worker (or list the worker in federation_sender_instances)"
    )
    raw = worker_raw(worker_app="synapse.app.pusher", pusher_instances=None)
    assert error_of(raw) == (
        "start_pushers: must be false in the shared config for a synapse.app.pusher worker "
        "(or list the worker in pusher_instances)"
    )


# --- the example file ---------------------------------------------------------------


def test_example_documents_every_worker_option() -> None:
    text = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    assert "## Workers ##" in text
    for option in (
        "worker_app",
        "worker_name",
        "worker_listeners",
        "worker_log_config",
        "worker_pid_file",
        "instance_map",
        "stream_writers",
        "federation_sender_instances",
        "pusher_instances",
        "run_background_tasks_on",
        "media_instance_running_background_jobs",
        "notify_appservices_from_worker",
        "update_user_directory_from_worker",
        "worker_replication_secret",
        "worker_replication_secret_path",
        "dbid",
        *STREAMS,
    ):
        assert re.search(rf"^\s*#\s*{option}:", text, re.MULTILINE), option


def test_example_worker_section_uncommented_loads(tmp_path: Path) -> None:
    """The commented shared options, uncommented, make a valid shared config."""
    text = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    section = text.split("## Workers ##", 1)[1]
    shared_part = section.split("# A worker's own options", 1)[0]
    lines = [line[1:] for line in shared_part.splitlines() if re.match(r"#(\S|  )", line)]
    raw = yaml.safe_load("\n".join(lines))
    raw.pop("worker_replication_secret_path")
    raw.update(server_name="example.org", database=PG, redis={"enabled": True})
    raw["instance_map"].update(
        {name: {"host": "127.0.0.1", "port": 18200 + n} for n, name in enumerate(["sender1"])}
    )
    config: HomeserverConfig = parse_config(raw, NO_ENV)
    assert config.worker.stream_writers.events == ("writer1", "writer2")
