"""``oidc_providers`` and the legacy ``oidc_config`` under Synapse's names: defaults,
every option, and the errors, each naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homeserver.config import AttributeRequirement, ConfigError, OidcProviderConfig, parse_config

BASE = {
    "idp_id": "example",
    "idp_name": "Example",
    "issuer": "https://id.example.com/",
    "client_id": "matrix",
    "client_secret": "secret",
}


def parse(**options: Any) -> Any:
    return parse_config({"server_name": "example.org", **options}, environ={})


def errors_of(**options: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        parse(**options)
    return raised.value.errors


def test_no_providers_by_default() -> None:
    assert parse().oidc_providers == ()


def test_a_provider_with_synapse_defaults() -> None:
    (provider,) = parse(oidc_providers=[BASE]).oidc_providers
    assert provider == OidcProviderConfig(
        idp_id="oidc-example",
        idp_name="Example",
        issuer="https://id.example.com/",
        client_id="matrix",
        client_secret="secret",
    )
    assert provider.discover and provider.pkce_method == "auto"
    assert provider.scopes == ("openid",)
    assert provider.client_auth_method == "client_secret_basic"
    assert provider.user_mapping.subject_template == "{{ user.sub }}"


def test_every_option(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    raw = {
        **BASE,
        "client_secret": None,
        "client_secret_path": str(secret),
        "idp_icon": "mxc://example.com/i",
        "idp_brand": "example",
        "discover": False,
        "client_auth_method": "client_secret_post",
        "pkce_method": "always",
        "scopes": ["openid", "profile"],
        "authorization_endpoint": "https://id.example.com/auth",
        "token_endpoint": "https://id.example.com/token",
        "userinfo_endpoint": "https://id.example.com/userinfo",
        "jwks_uri": "https://id.example.com/jwks",
        "user_profile_method": "userinfo_endpoint",
        "allow_existing_users": True,
        "enable_registration": False,
        "user_mapping_provider": {
            "config": {
                "subject_claim": "id",
                "localpart_template": "{{ user.login }}",
                "display_name_template": "{{ user.name }}",
                "email_template": "{{ user.email }}",
            }
        },
        "attribute_requirements": [
            {"attribute": "groups", "value": "staff"},
            {"attribute": "dept", "one_of": ["a", "b"]},
        ],
    }
    (provider,) = parse(oidc_providers=[raw]).oidc_providers
    assert provider.client_secret == "from-a-file"
    assert provider.discover is False and provider.pkce_method == "always"
    assert provider.jwks_uri == "https://id.example.com/jwks"
    assert provider.user_mapping.subject_template == "{{ user.id }}"
    assert provider.user_mapping.email_template == "{{ user.email }}"
    assert provider.attribute_requirements == (
        AttributeRequirement("groups", ("staff",)),
        AttributeRequirement("dept", ("a", "b")),
    )
    assert not provider.enable_registration and provider.allow_existing_users


def test_legacy_oidc_config_is_the_provider_oidc() -> None:
    legacy = {k: v for k, v in BASE.items() if k not in ("idp_id", "idp_name")}
    config = parse(oidc_config=legacy, oidc_providers=[BASE])
    assert [p.idp_id for p in config.oidc_providers] == ["oidc-example", "oidc"]
    assert config.oidc_providers[1].idp_name == "OIDC"
    assert parse(oidc_config={**legacy, "enabled": False}).oidc_providers == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"idp_id": "has space"}, "oidc_providers[0].idp_id: must be 1 to 250 characters"),
        ({"idp_id": None}, "oidc_providers[0].idp_id: this option is required"),
        ({"idp_name": None}, "oidc_providers[0].idp_name: this option is required"),
        ({"issuer": None}, "oidc_providers[0].issuer: this option is required"),
        ({"issuer": "http://id.example.com/"}, "oidc_providers[0].issuer: must be an https://"),
        ({"client_secret": None}, "oidc_providers[0].client_secret: this option is required"),
        ({"client_auth_method": "private_key_jwt"}, "oidc_providers[0].client_auth_method"),
        ({"pkce_method": "sometimes"}, "oidc_providers[0].pkce_method"),
        ({"scopes": ["profile"]}, 'oidc_providers[0].scopes: must include "openid"'),
        ({"discover": False}, "oidc_providers[0].authorization_endpoint: this option is required"),
        (
            {"user_mapping_provider": {"config": {"localpart_template": "{{ user."}}},
            "oidc_providers[0].user_mapping_provider.config.localpart_template: invalid Jinja",
        ),
        (
            {"user_mapping_provider": {"config": {"confirm_localpart": True}}},
            "oidc_providers[0].user_mapping_provider.config.confirm_localpart: asking users",
        ),
        (
            {"attribute_requirements": [{"attribute": "g"}]},
            "oidc_providers[0].attribute_requirements[0]: exactly one of value and one_of",
        ),
        ({"client_secret_path": "/nonexistent/secret"}, "client_secret_path"),
        ({"issuerr": "x"}, "oidc_providers[0].issuerr"),
    ],
)
def test_bad_options_are_errors_naming_the_key(change: dict[str, Any], message: str) -> None:
    raw = {**BASE, **change}
    if change.get("client_secret_path"):
        raw.pop("client_secret")
    errors = errors_of(oidc_providers=[{k: v for k, v in raw.items() if v is not None}])
    assert any(message in error for error in errors), errors


def test_client_auth_none_needs_no_secret_and_duplicates_are_errors() -> None:
    raw = {k: v for k, v in BASE.items() if k != "client_secret"}
    (provider,) = parse(oidc_providers=[{**raw, "client_auth_method": "none"}]).oidc_providers
    assert provider.client_secret is None
    errors = errors_of(oidc_providers=[BASE, BASE])
    assert any("more than one provider has the id oidc-example" in e for e in errors), errors


def test_synapse_options_not_implemented_are_warnings() -> None:
    config = parse(oidc_providers=[{**BASE, "backchannel_logout_enabled": True}])
    assert any("backchannel_logout_enabled" in w for w in config.ignored_options)
