"""Registration files: parsed, validated, and refused with the file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeserver.appservice import load_registrations, parse_registration
from homeserver.config import ConfigError
from tests.appservice.conftest import SERVER_NAME, registration, write_registration
from tests.conftest import HarnessFactory


def test_a_bridge_registration_is_read() -> None:
    service = parse_registration(
        registration(
            "http://localhost:29317/",
            **{"de.sorunome.msc2409.push_ephemeral": True, "org.matrix.msc3202": True},
        ),
        SERVER_NAME,
    )
    assert service.id == "bridge"
    assert service.url == "http://localhost:29317"
    assert service.sender == "@bridgebot:test.local"
    assert service.receive_ephemeral and service.msc3202
    assert not service.rate_limited
    assert service.protocols == ("bridgeproto",)
    assert service.is_exclusive_user("@_bridge_alice:test.local")
    assert service.is_exclusive_user("@bridgebot:test.local")
    assert not service.is_interested_in_user("@alice:test.local")
    assert service.is_exclusive_alias("#_bridge_room:test.local")
    assert not service.is_interested_in_alias("#room:test.local")
    assert "as_token" not in repr(service) and "hs_token" not in repr(service)


def test_null_url_and_defaults() -> None:
    raw = registration(None)
    del raw["rate_limited"], raw["protocols"]
    service = parse_registration(raw, SERVER_NAME)
    assert service.url is None
    assert service.rate_limited
    assert service.protocols == ()
    assert not service.receive_ephemeral


def test_receive_ephemeral_stable_name() -> None:
    service = parse_registration(registration(None, receive_ephemeral=True), SERVER_NAME)
    assert service.receive_ephemeral


def test_non_exclusive_namespace_is_interest_only() -> None:
    raw = registration(None)
    raw["namespaces"]["users"] = [{"regex": "@irc_.*", "exclusive": False}]
    raw["namespaces"]["rooms"] = [{"regex": "!bridged:.*", "exclusive": False}]
    service = parse_registration(raw, SERVER_NAME)
    assert service.is_interested_in_user("@irc_bob:test.local")
    assert not service.is_exclusive_user("@irc_bob:test.local")
    assert service.is_interested_in_room_id("!bridged:test.local")
    assert not service.is_exclusive_room("!bridged:test.local")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "id: this option is required"),
        ({"as_token": 5}, "as_token: expected a string"),
        ({"hs_token": ""}, "hs_token: must not be empty"),
        ({"sender_localpart": "bad:one"}, "sender_localpart:"),
        ({"url": "ftp://example.com"}, "url: expected an http:// or https:// URL"),
        ({"rate_limited": "yes"}, "rate_limited: expected true or false"),
        ({"protocols": "irc"}, "protocols: expected a list"),
        (
            {"namespaces": {"users": [{"regex": "@(unclosed", "exclusive": True}]}},
            "namespaces.users[0].regex: not a valid regular expression",
        ),
        (
            {"namespaces": {"aliases": [{"regex": "#x.*"}]}},
            "namespaces.aliases[0].exclusive: this option is required",
        ),
        ({"namespaces": "everything"}, "namespaces: expected a mapping"),
    ],
)
def test_bad_field_is_named(change: dict[str, object], message: str) -> None:
    raw = registration("http://localhost:1")
    raw.update(change)
    with pytest.raises(ConfigError) as raised:
        parse_registration(raw, SERVER_NAME, "reg.yaml")
    assert any(error.startswith("reg.yaml: " + message) for error in raised.value.errors), (
        raised.value.errors
    )


def test_missing_url_key_is_an_error() -> None:
    raw = registration("http://localhost:1")
    del raw["url"]
    with pytest.raises(ConfigError, match="url: this option is required"):
        parse_registration(raw, SERVER_NAME)


def test_files_are_loaded_and_errors_name_the_file(tmp_path: Path) -> None:
    good = write_registration(tmp_path, registration("http://localhost:1"), "good.yaml")
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    services = load_registrations([good], SERVER_NAME)
    assert [s.id for s in services] == ["bridge"]
    with pytest.raises(ConfigError) as raised:
        load_registrations([good, tmp_path / "broken.yaml", tmp_path / "absent.yaml"], SERVER_NAME)
    errors = raised.value.errors
    assert any("app_service_config_files[1]" in e and "broken.yaml" in e for e in errors)
    assert any("app_service_config_files[2]" in e and "cannot read" in e for e in errors)


def test_ids_and_tokens_must_be_unique(tmp_path: Path) -> None:
    first = write_registration(tmp_path, registration(None), "a.yaml")
    second = write_registration(
        tmp_path, registration(None, sender_localpart="other", hs_token="other"), "b.yaml"
    )
    with pytest.raises(ConfigError) as raised:
        load_registrations([first, second], SERVER_NAME)
    text = str(raised.value)
    assert "b.yaml" in text and "id: the same as in" in text
    assert "as_token: the same as in" in text


async def test_an_as_token_that_is_a_users_access_token_stops_start_up(
    make_homeserver: HarnessFactory, tmp_path: Path
) -> None:
    first = await make_homeserver()
    alice = await first.register("alice")
    path = write_registration(tmp_path, registration(None, as_token=alice["access_token"]))
    with pytest.raises(ConfigError, match="as_token: already the access token of a user"):
        await make_homeserver(app_service_config_files=[path])
