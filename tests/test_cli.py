"""The command line: ``homeserver.__main__.main(argv)``, and the server as a process.

Every failure is one line on stderr and exit status 1, never a traceback. The
commands that touch the database run on SQLite and on PostgreSQL (a database of
their own, named by HOMESERVER_DATABASE_URL as a container would).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from homeserver.__main__ import main
from homeserver.config import load_config
from homeserver.server import Homeserver
from tests.conftest import PG_ADMIN

REPO = Path(__file__).resolve().parent.parent


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    """The single error line of a failed command (log lines from start-up aside)."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("homeserver: ")]
    assert len(errors) == 1, err
    return errors[0]


def write_config(tmp_path: Path, port: int = 8008, extra: str = "") -> Path:
    path = tmp_path / "homeserver.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            server_name: cli.test
            listeners:
              - port: {port}
                resources: [{{names: [client]}}]
            database:
              name: sqlite3
              args: {{database: "{tmp_path / "data" / "homeserver.db"}"}}
            signing_key_path: "{tmp_path / "data" / "signing.key"}"
            media_store_path: "{tmp_path / "data" / "media"}"
            bcrypt_rounds: 4
            log_level: WARNING
            """)
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, as a postgresql:// URL."""
    name = f"hs_cli_{os.getpid()}_{secrets.token_hex(4)}"
    admin = conninfo_to_dict(PG_ADMIN)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    user = quote(str(admin.get("user", "postgres")))
    password = f":{quote(str(admin['password']))}" if admin.get("password") else ""
    host, port = admin.get("host", "127.0.0.1"), admin.get("port", 5432)
    yield f"postgresql://{user}{password}@{host}:{port}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def cli_config(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A config file; for PostgreSQL, HOMESERVER_DATABASE_URL names a database of its own."""
    if request.param == "postgres":
        monkeypatch.setenv("HOMESERVER_DATABASE_URL", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv("HOMESERVER_DATABASE_URL", raising=False)
    return write_config(tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- failures: one line, exit 1 -----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
        ([], "--config FILE is required"),
        (["register-user", "--config", "x.yaml"], "the following arguments are required: user"),
        (["generate-config", "--config", "x.yaml"], "--server-name"),
        (["registration-token", "--config", "x.yaml", "--uses", "many"], "invalid int value"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    status, _, err = run_cli(capsys, *argv)
    assert status == 1
    assert expected in one_line_error(err)


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "--config", tmp_path / "nope.yaml")
    assert status == 1
    line = one_line_error(err)
    assert "nope.yaml" in line


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", None),
        ("no_such_option: 1\n", "no_such_option"),
        ("rc_login: {account: {per_second: fast}}\n", "rc_login.account.per_second"),
    ],
)
def test_invalid_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: str, expected: str | None
) -> None:
    path = write_config(tmp_path, extra=extra)
    if expected is None:  # a bad port: the message the issue asks for
        path.write_text(path.read_text().replace("port: 8008", 'port: "abc"'))
        expected = 'listeners[0].port: expected an integer, got "abc"'
    status, _, err = run_cli(capsys, "register-user", "-c", path, "alice", "-p", "pw")
    assert status == 1
    assert expected in one_line_error(err)
    assert not (tmp_path / "data" / "homeserver.db").exists()


def test_sqlite_database_that_cannot_be_opened(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOMESERVER_DATABASE_URL", raising=False)
    path = write_config(tmp_path)
    db_path = tmp_path / "data" / "homeserver.db"
    db_path.mkdir(parents=True)  # a directory where the file should be
    status, _, err = run_cli(capsys, "register-user", "-c", path, "alice", "-p", "pw")
    assert status == 1
    line = one_line_error(err)
    assert f"cannot open the SQLite database {db_path}" in line
    db_path.rmdir()
    db_path.write_bytes(b"this is not a database" * 100)
    status, _, err = run_cli(capsys, "--config", path)
    assert status == 1
    assert "file is not a database" in one_line_error(err)


def test_postgres_that_cannot_be_reached(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 1: the connection is refused, and that is said at once.
    monkeypatch.setenv("HOMESERVER_DATABASE_URL", "postgresql://hs:s3cret@127.0.0.1:1/homeserver")
    path = write_config(tmp_path)
    started = time.monotonic()
    status, _, err = run_cli(capsys, "--config", path)
    assert time.monotonic() - started < 5
    assert status == 1
    line = one_line_error(err)
    assert "cannot connect to PostgreSQL (host=127.0.0.1 port=1 dbname=homeserver" in line
    assert "s3cret" not in err


def test_subprocess_errors_have_no_traceback(tmp_path: Path) -> None:
    """The real process: what a user sees, including anything printed at exit."""
    path = write_config(tmp_path)
    (tmp_path / "data" / "homeserver.db").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "HOMESERVER_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "homeserver", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("homeserver: database: cannot open the SQLite database")


# --- generate-config ----------------------------------------------------------------


def test_generate_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "etc" / "homeserver.yaml"
    status, out, err = run_cli(
        capsys, "generate-config", "--server-name", "example.org", "--config", path
    )
    assert (status, err) == (0, "")
    assert out == f"wrote {path}\n"
    config = load_config(path, {})
    assert config.server_name == "example.org"
    assert config.registration_shared_secret
    assert Path(config.signing_key_path).is_file()
    # Never overwritten.
    status, _, err = run_cli(
        capsys, "generate-config", "--server-name", "example.org", "--config", path
    )
    assert status == 1
    assert "already exists" in one_line_error(err)
    status, _, err = run_cli(
        capsys, "generate-config", "--server-name", "bad name", "--config", tmp_path / "x.yaml"
    )
    assert status == 1
    assert "server_name" in one_line_error(err)


# --- register-user and registration-token (both engines) ---------------------------


async def _check_user(path: Path, user_id: str, password: str) -> bool:
    server = await Homeserver.build(load_config(path))
    try:
        assert await server.client.accounts.check_password(user_id, password) == user_id
        record = await server.stores.accounts.get_user(user_id)
        assert record is not None
        return record.is_admin
    finally:
        await server.close()


def test_register_user(capsys: pytest.CaptureFixture[str], cli_config: Path) -> None:
    status, out, err = run_cli(
        capsys, "register-user", "-c", cli_config, "alice", "--password", "pw1", "--admin"
    )
    assert status == 0, err
    assert out == "registered @alice:cli.test\n"
    status, out, err = run_cli(
        capsys, "register-user", "-c", cli_config, "@bob:cli.test", "-p", "pw2"
    )
    assert status == 0, err
    assert asyncio.run(_check_user(cli_config, "@alice:cli.test", "pw1")) is True
    assert asyncio.run(_check_user(cli_config, "@bob:cli.test", "pw2")) is False

    for argv, expected in [
        (["alice", "-p", "x"], "M_USER_IN_USE"),
        (["@carol:elsewhere.test", "-p", "x"], "@carol:elsewhere.test is not a user of cli.test"),
        (["Not Valid", "-p", "x"], "M_INVALID_USERNAME"),
        (["carol"], "--password is required when not on a terminal"),
    ]:
        status, _, err = run_cli(capsys, "register-user", "-c", cli_config, *argv)
        assert status == 1
        assert expected in one_line_error(err)


async def _tokens(path: Path) -> dict[str, tuple[int | None, int | None]]:
    server = await Homeserver.build(load_config(path))
    try:
        tokens = await server.stores.registration_tokens.list_all()
        return {t.token: (t.uses_allowed, t.expiry_time) for t in tokens}
    finally:
        await server.close()


def test_registration_token(capsys: pytest.CaptureFixture[str], cli_config: Path) -> None:
    status, out, err = run_cli(
        capsys, "registration-token", "-c", cli_config, "Let.me_in~2", "--uses", "2"
    )
    assert (status, out) == (0, "Let.me_in~2\n"), err
    status, out, err = run_cli(
        capsys, "registration-token", "-c", cli_config, "--expiry-ts", "99999999999999"
    )
    assert status == 0, err
    generated = out.strip()
    assert len(generated) == 16
    status, out, err = run_cli(capsys, "registration-token", "-c", cli_config, "--uses", "0")
    assert status == 0, err
    unusable = out.strip()

    # The admin API's rules: 1-64 characters of [A-Za-z0-9._~-], uses >= 0, no duplicates.
    for argv, expected in [
        (["bad token!"], "token must be 1-64 characters"),
        (["x" * 65], "token must be 1-64 characters"),
        (["ok", "--uses", "-3"], "uses_allowed must be a non-negative integer"),
        (["ok", "--expiry-ts", "1"], "expiry_time must not be in the past"),
        (["Let.me_in~2"], "Token already exists"),
    ]:
        status, _, err = run_cli(capsys, "registration-token", "-c", cli_config, *argv)
        assert status == 1
        assert expected in one_line_error(err)

    assert asyncio.run(_tokens(cli_config)) == {
        "Let.me_in~2": (2, None),
        generated: (None, 99999999999999),
        unusable: (0, None),
    }


# --- the server as a process --------------------------------------------------------


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _login(base: str, user: str, password: str) -> int:
    login = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    body = json.dumps(login).encode()
    request = urllib.request.Request(
        f"{base}/_matrix/client/v3/login", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def _start_on_a_free_port(
    cli_config: Path, template: str, pid_file: Path, log_config: Path, log_file: Path
) -> tuple[subprocess.Popen[str], str]:
    """Start the server on a free port; it is ours once its log says it listens there.
    Another test's server may take the port between free_port() and the bind (this
    process then exits, or another program answers): then again on another port."""
    for _ in range(3):
        port = free_port()
        cli_config.write_text(
            template.replace("port: 8008", f"port: {port}")
            + f"\npid_file: {json.dumps(str(pid_file))}\nlog_config: {json.dumps(str(log_config))}\n"
            + 'macaroon_secret_key: "a Synapse option"\n'
        )
        base = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "homeserver", "--config", str(cli_config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while process.poll() is None:
            listening = log_file.exists() and f"127.0.0.1:{port}" in log_file.read_text()
            try:
                if listening and _get(f"{base}/_matrix/client/versions") == 200:
                    return process, base
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the server did not start: {process.communicate()[1]}")
            time.sleep(0.1)
        _, stderr = process.communicate()
        assert "in use" in stderr or "Errno 98" in stderr, stderr  # only a lost port
        log_file.unlink(missing_ok=True)
    raise AssertionError("no free port in three tries")


def test_server_runs_until_sigterm_and_closes_the_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cli_config: Path
) -> None:
    pid_file = tmp_path / "run" / "homeserver.pid"
    log_file = tmp_path / "server.log"
    log_config = tmp_path / "log.yaml"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(log_file),
                        "formatter": "plain",
                    }
                },
                "root": {"level": "INFO", "handlers": ["file"]},
            }
        )
    )
    assert run_cli(capsys, "register-user", "-c", cli_config, "alice", "-p", "pw1")[0] == 0
    # (log_config is only for the server process: in this one it would reconfigure
    # the test run's logging)
    template = cli_config.read_text()
    process, base = _start_on_a_free_port(cli_config, template, pid_file, log_config, log_file)
    try:
        assert _login(base, "alice", "pw1") == 200  # a write: a new device and token
        assert pid_file.read_text() == f"{process.pid}\n"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert not pid_file.exists()
    # the log went where log_config said, with one warning for the Synapse option
    log = log_file.read_text()
    assert "homeserver cli.test started" in log
    warnings = [line for line in log.splitlines() if "macaroon_secret_key" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING"), log

    url = os.environ.get("HOMESERVER_DATABASE_URL")
    if url is None:
        # Every connection was closed: the last one checkpointed and removed the WAL.
        db_path = tmp_path / "data" / "homeserver.db"
        assert not db_path.with_name("homeserver.db-wal").exists()
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            devices = conn.execute("SELECT COUNT(*) FROM devices").fetchone()
        assert devices == (1,)
    else:
        dbname = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            left = conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)
            ).fetchone()
            assert left == (0,), "the server left connections open"
        with psycopg.connect(url) as conn:
            devices = conn.execute("SELECT COUNT(*) FROM devices").fetchone()
        assert devices == (1,)


def test_pid_file_of_a_running_process_is_refused(tmp_path: Path) -> None:
    from homeserver.server import PidFile

    path = tmp_path / "hs.pid"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path.write_text(f"{sleeper.pid}\n")
        with pytest.raises(OSError, match="is running"):
            PidFile(path).write()
        assert path.read_text() == f"{sleeper.pid}\n"
        PidFile(path).remove()  # not ours: left alone
        assert path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # a stale file (the process is gone) is replaced
    PidFile(path).write()
    assert path.read_text() == f"{os.getpid()}\n"
