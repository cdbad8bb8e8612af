"""Logs: request IDs (Synapse's METHOD-N) in every line a request causes, the
request log line, Synapse's log_config files applied with dictConfig, and secrets
(access tokens, passwords) never logged."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.__main__ import configure_logging
from homeserver.config import ConfigError
from homeserver.request_context import (
    NO_REQUEST,
    RequestContext,
    RequestContextFilter,
    enter_request,
    install_record_factory,
    leave_request,
)
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import V3, make_user

PASSWORD = "correct horse battery staple 17"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what a dictConfig does to the root logger (handlers, level)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_every_line_a_request_causes_carries_its_id(
    hs: HomeserverHarness, caplog: pytest.LogCaptureFixture
) -> None:
    install_record_factory()
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    caplog.set_level(logging.INFO)
    await alice.request("POST", f"/rooms/{room_id}/upgrade", {"new_version": "11"})
    await alice.request("GET", "/account/whoami")
    [upgraded] = [r for r in caplog.records if r.name == "homeserver.rooms.upgrade"]
    access = [r for r in caplog.records if r.name == "homeserver.access"]
    [upgrade_line] = [r for r in access if "/upgrade" in r.getMessage()]
    [whoami_line] = [r for r in access if "/account/whoami" in r.getMessage()]
    # the service's line and the request line share the request's ID
    assert re.fullmatch(r"POST-\d+", upgrade_line.request)  # type: ignore[attr-defined]
    assert upgraded.request == upgrade_line.request  # type: ignore[attr-defined]
    assert upgraded.requester == alice.user_id  # type: ignore[attr-defined]
    assert re.fullmatch(r"GET-\d+", whoami_line.request)  # type: ignore[attr-defined]
    first = int(upgrade_line.request.split("-")[1])  # type: ignore[attr-defined]
    assert int(whoami_line.request.split("-")[1]) > first  # type: ignore[attr-defined]
    # the request line: address, method, path, status, duration, requester
    message = whoami_line.getMessage()
    assert re.fullmatch(
        rf"127\.0\.0\.1 GET {V3}/account/whoami 200 \d+\.\dms {re.escape(alice.user_id)}",
        message,
    ), message
    # without a token, no requester
    await hs.client.get(f"{V3}/account/whoami")
    last = [r for r in caplog.records if r.name == "homeserver.access"][-1].getMessage()
    assert last.endswith(" 401 " + last.split(" 401 ")[1]) and last.endswith(" -"), last


async def test_tasks_started_by_a_request_keep_its_id(caplog: pytest.LogCaptureFixture) -> None:
    install_record_factory()
    caplog.set_level(logging.INFO, logger="tests.observability")
    log = logging.getLogger("tests.observability.tasks")

    async def background() -> None:
        log.info("in a task")

    token = enter_request(RequestContext("PUT-7", requester="@a:test.local"))
    try:
        task = asyncio.create_task(background())
    finally:
        leave_request(token)
    await task
    log.info("outside")
    inside, outside = caplog.records
    assert (inside.request, inside.requester) == ("PUT-7", "@a:test.local")  # type: ignore[attr-defined]
    assert outside.request == NO_REQUEST  # type: ignore[attr-defined]


def test_the_filter_fills_records_made_without_the_factory() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    for attribute in ("request", "requester"):
        if hasattr(record, attribute):
            delattr(record, attribute)
    assert RequestContextFilter(request="none").filter(record)
    assert record.request == "none"  # type: ignore[attr-defined]
    token = enter_request(RequestContext("GET-3"))
    try:
        other = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        for attribute in ("request", "requester"):
            if hasattr(other, attribute):
                delattr(other, attribute)
        RequestContextFilter().filter(other)
    finally:
        leave_request(token)
    assert other.request == "GET-3"  # type: ignore[attr-defined]


def synapse_log_config(log_file: Path, *, formatter: dict[str, Any]) -> dict[str, Any]:
    """A log config as Synapse's documentation writes it (its class paths)."""
    return {
        "version": 1,
        "formatters": {"precise": formatter},
        "filters": {
            "context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(log_file),
                "filters": ["context"],
                "encoding": "utf8",
            },
            "buffer": {
                "class": "synapse.logging.handlers.PeriodicallyFlushingMemoryHandler",
                "target": "file",
                "capacity": 10,
                "flushLevel": 30,
                "period": 5,
            },
        },
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": "DEBUG", "handlers": ["buffer"]},
        "disable_existing_loggers": False,
    }


def flush_root() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


async def test_a_synapse_log_config_and_no_secrets_in_it(
    hs: HomeserverHarness, tmp_path: Path, restore_logging: None
) -> None:
    log_file = tmp_path / "homeserver.log"
    config_file = tmp_path / "log.yaml"
    fmt = "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"
    config_file.write_text(yaml.safe_dump(synapse_log_config(log_file, formatter={"format": fmt})))
    configure_logging("INFO", config_file)
    # a password in a body (registration, login), an access token in a query string
    alice = await hs.register("alice", PASSWORD)
    token = alice["access_token"]
    login = await hs.client.post(
        f"{V3}/login",
        json={"type": "m.login.password", "user": "alice", "password": PASSWORD},
    )
    assert login.status == 200
    second_token = (await login.json())["access_token"]
    whoami = await hs.client.get(f"{V3}/account/whoami", params={"access_token": token})
    assert whoami.status == 200
    missing = await hs.client.get(f"{V3}/no/such/path", params={"access_token": second_token})
    assert missing.status == 404
    flush_root()
    text = log_file.read_text(encoding="utf-8")
    assert PASSWORD not in text
    assert token not in text and second_token not in text
    assert "access_token=<redacted>" in text
    lines = [line for line in text.splitlines() if " - homeserver.access - " in line]
    assert any(
        re.search(rf" - GET-\d+ - 127\.0\.0\.1 GET {V3}/account/whoami\?access_token=", line)
        and line.endswith(alice["user_id"])
        for line in lines
    ), lines
    assert any(re.search(r" - POST-\d+ - .* POST /_matrix/client/v3/login 200 ", x) for x in lines)


async def test_json_lines_with_synapses_terse_json_formatter(
    hs: HomeserverHarness, tmp_path: Path, restore_logging: None
) -> None:
    log_file = tmp_path / "homeserver.json"
    config_file = tmp_path / "log.yaml"
    settings = synapse_log_config(
        log_file, formatter={"class": "synapse.logging.TerseJsonFormatter"}
    )
    config_file.write_text(yaml.safe_dump(settings))
    configure_logging("INFO", config_file)
    alice = await hs.register("alice", PASSWORD)
    response = await hs.client.get(
        f"{V3}/account/whoami", headers={"Authorization": f"Bearer {alice['access_token']}"}
    )
    assert response.status == 200
    flush_root()
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    [whoami] = [e for e in entries if "/account/whoami" in e["log"]]
    assert whoami["namespace"] == "homeserver.access" and whoami["level"] == "INFO"
    assert re.fullmatch(r"GET-\d+", whoami["request"])
    assert whoami["requester"] == alice["user_id"]
    assert PASSWORD not in log_file.read_text()


def test_bad_log_configs_are_one_line_errors(tmp_path: Path, restore_logging: None) -> None:
    with pytest.raises(ConfigError, match="log_config"):
        configure_logging("INFO", tmp_path / "missing.yaml")
    structured = tmp_path / "structured.yaml"
    structured.write_text("structured: true\ndrains: {}\n")
    with pytest.raises(ConfigError, match="structured"):
        configure_logging("INFO", structured)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(
        yaml.safe_dump(
            {"version": 1, "handlers": {"h": {"class": "synapse.logging.NoSuchHandler"}}}
        )
    )
    with pytest.raises(ConfigError, match="log_config: cannot use"):
        configure_logging("INFO", unknown)
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- 1\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        configure_logging("INFO", not_a_mapping)


async def test_secrets_are_not_in_debug_logs(
    hs: HomeserverHarness, caplog: pytest.LogCaptureFixture
) -> None:
    install_record_factory()
    with caplog.at_level(logging.DEBUG):
        alice = await hs.register("alice", PASSWORD)
        token = alice["access_token"]
        password_change = await hs.client.post(
            f"{V3}/account/password",
            params={"access_token": token},
            json={
                "new_password": PASSWORD + " new",
                "logout_devices": False,
                "auth": {"type": "m.login.password", "user": "alice", "password": PASSWORD},
            },
        )
        assert password_change.status in (200, 401)
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert PASSWORD not in text and token not in text
    assert any("<redacted>" in r.getMessage() for r in caplog.records)
