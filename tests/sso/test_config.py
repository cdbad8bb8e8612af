"""``cas_config`` and ``sso`` under Synapse's names: defaults, every option, errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from homeserver.config import CasConfig, ConfigError, SsoConfig, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def parse(**options: Any) -> Any:
    return parse_config({"server_name": "example.org", **options}, environ={})


def errors_of(**options: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        parse(**options)
    return raised.value.errors


def test_cas_is_off_by_default_and_for_an_empty_or_disabled_section() -> None:
    assert parse().cas_config == CasConfig()
    assert not parse().cas_config.enabled
    assert not parse(cas_config=None).cas_config.enabled
    assert not parse(cas_config={}).cas_config.enabled
    disabled = parse(cas_config={"enabled": False})
    assert not disabled.cas_config.enabled and disabled.ignored_options == ()


def test_cas_with_a_server_url_is_on_with_synapse_defaults() -> None:
    cas = parse(cas_config={"server_url": "https://cas.example.com/cas/"}).cas_config
    assert cas.enabled
    assert cas.server_url == "https://cas.example.com/cas"
    assert cas.protocol_version is None
    assert cas.displayname_attribute is None
    assert dict(cas.required_attributes) == {}
    assert cas.enable_registration
    assert not cas.allow_numeric_ids and cas.numeric_ids_prefix == "u"
    assert (cas.idp_name, cas.idp_icon, cas.idp_brand) == ("CAS", None, None)


def test_every_cas_option_is_read() -> None:
    config = parse(
        cas_config={
            "enabled": True,
            "server_url": "https://cas.example.com",
            "protocol_version": 3,
            "displayname_attribute": "name",
            "required_attributes": {"group": "staff", "dept": None},
            "enable_registration": False,
            "allow_numeric_ids": True,
            "numeric_ids_prefix": "n",
            "idp_name": "Example SSO",
            "idp_icon": "mxc://example.org/icon",
            "idp_brand": "example",
            "service_url": "https://old.example.org",
        },
        sso={"client_whitelist": ["https://app.example.com/"]},
    )
    cas = config.cas_config
    assert cas.protocol_version == 3 and cas.displayname_attribute == "name"
    assert dict(cas.required_attributes) == {"group": "staff", "dept": None}
    assert not cas.enable_registration and cas.allow_numeric_ids
    assert cas.numeric_ids_prefix == "n"
    assert (cas.idp_name, cas.idp_icon, cas.idp_brand) == (
        "Example SSO",
        "mxc://example.org/icon",
        "example",
    )
    assert config.sso.client_whitelist == ("https://app.example.com/",)
    # Synapse's legacy service_url is accepted with a warning
    assert [w.split(":")[0] for w in config.ignored_options] == ["cas_config.service_url"]


@pytest.mark.parametrize(
    ("cas_config", "error"),
    [
        ({"enabled": True}, "cas_config.server_url: this option is required"),
        ({"server_url": "cas.example.com"}, "cas_config.server_url: expected an http"),
        ({"server_url": "ftp://cas.example.com"}, "cas_config.server_url: expected an http"),
        ({"server_url": "https://cas.example.com/?x=1"}, "cas_config.server_url: must not have"),
        ({"server_url": 5}, "cas_config.server_url: expected a string"),
        ({"server_url": "https://c", "protocol_version": 4}, "cas_config.protocol_version"),
        ({"server_url": "https://c", "enabled": "yes"}, "cas_config.enabled: expected true"),
        ({"server_url": "https://c", "required_attributes": ["a"]}, "required_attributes"),
        (
            {"server_url": "https://c", "required_attributes": {"a": 1}},
            "cas_config.required_attributes.a: expected a string or null",
        ),
        ({"server_url": "https://c", "numeric_ids_prefix": "u-"}, "numeric_ids_prefix"),
        ({"server_url": "https://c", "idp_name": ""}, "cas_config.idp_name: must not be empty"),
        ({"server_url": "https://c", "server_ulr": "x"}, 'did you mean "server_url"'),
    ],
)
def test_bad_cas_options_are_errors_naming_the_key(cas_config: Any, error: str) -> None:
    assert any(error in message for message in errors_of(cas_config=cas_config)), errors_of(
        cas_config=cas_config
    )


def test_a_cas_config_that_is_not_a_mapping_is_an_error() -> None:
    assert errors_of(cas_config="https://cas.example.com") == (
        'cas_config: expected a mapping, got "https://cas.example.com"',
    )


def test_bad_sso_options_are_errors() -> None:
    assert any("sso.client_whitelist" in e for e in errors_of(sso={"client_whitelist": "x"}))
    assert any("sso.client_whitelist[0]" in e for e in errors_of(sso={"client_whitelist": [""]}))
    warned = parse(sso={"update_profile_information": True}).ignored_options
    assert [w.split(":")[0] for w in warned] == ["sso.update_profile_information"]


def test_public_baseurl_defaults_to_https_server_name() -> None:
    assert parse().public_baseurl_effective == "https://example.org/"
    assert parse(public_baseurl="https://hs.example.org").public_baseurl_effective == (
        "https://hs.example.org/"
    )


@pytest.mark.parametrize("cls", [CasConfig, SsoConfig])
def test_example_config_documents_every_sso_option(cls: type) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for f in dataclasses.fields(cls):
        assert re.search(rf"\b{f.name}:", text), f"{f.name} is not in config.example.yaml"
