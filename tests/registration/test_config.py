"""The registration guards' options: Synapse's names, every bad value named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homeserver.config import ConfigError, parse_config
from homeserver.config.registration import DEFAULT_SITEVERIFY_API
from tests.conftest import HarnessFactory

BASE: dict[str, Any] = {"server_name": "example.org"}


def config(**options: Any) -> Any:
    return parse_config({**BASE, **options}, environ={})


def error_of(**options: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config(**options)
    return str(caught.value)


def test_defaults() -> None:
    c = config()
    assert not c.registration_guards.enable_registration_captcha
    assert (
        c.registration_guards.recaptcha_public_key is None
        and c.registration_guards.recaptcha_private_key is None
    )
    assert c.registration_guards.recaptcha_siteverify_api == DEFAULT_SITEVERIFY_API
    assert (
        c.registration_guards.registrations_require_3pid == ()
        and not c.registration_guards.disable_msisdn_registration
    )
    assert c.registration_guards.form_secret is None and c.registration_guards.user_consent is None


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "pub").write_text("pub-key\n")
    (tmp_path / "priv").write_text("  priv-key\n")
    (tmp_path / "form").write_text("form\n")
    c = config(
        recaptcha_public_key_path=str(tmp_path / "pub"),
        recaptcha_private_key_path=str(tmp_path / "priv"),
        form_secret_path=str(tmp_path / "form"),
        enable_registration_captcha=True,
        enable_registration=True,
    )
    assert (
        c.registration_guards.recaptcha_public_key,
        c.registration_guards.recaptcha_private_key,
        c.registration_guards.form_secret,
    ) == (
        "pub-key",
        "priv-key",
        "form",
    )
    assert "priv-key" not in repr(c) and "'form'" not in repr(c)


def test_captcha_counts_as_verification() -> None:
    c = config(
        enable_registration=True,
        enable_registration_captcha=True,
        recaptcha_public_key="p",
        recaptcha_private_key="s",
    )
    assert c.enable_registration


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"enable_registration_captcha": True}, "enable_registration_captcha: needs"),
        ({"enable_registration_captcha": "yes"}, "enable_registration_captcha"),
        ({"recaptcha_public_key": 5}, "recaptcha_public_key"),
        ({"recaptcha_private_key": ""}, "recaptcha_private_key"),
        (
            {"recaptcha_private_key": "x", "recaptcha_private_key_path": "/dev/null"},
            "recaptcha_private_key_path: recaptcha_private_key and recaptcha_private_key_path",
        ),
        ({"recaptcha_public_key_path": "/no/such/file"}, "recaptcha_public_key_path: cannot"),
        ({"form_secret_path": "/dev/null"}, "form_secret_path: /dev/null is empty"),
        ({"recaptcha_siteverify_api": "ftp://x/y"}, "recaptcha_siteverify_api"),
        ({"recaptcha_siteverify_api": ["x"]}, "recaptcha_siteverify_api"),
        ({"registrations_require_3pid": ["fax"]}, "registrations_require_3pid[0]"),
        ({"registrations_require_3pid": "email"}, "registrations_require_3pid"),
        ({"disable_msisdn_registration": 3}, "disable_msisdn_registration"),
        ({"user_consent": {"version": "1"}}, "user_consent: needs form_secret"),
        ({"user_consent": {"template_dir": "/x"}, "form_secret": "s"}, "user_consent.version"),
        (
            {"user_consent": {"version": "1", "template_dir": "/no/such"}, "form_secret": "s"},
            "user_consent.template_dir: could not find",
        ),
        ({"user_consent": {"version": "../1"}, "form_secret": "s"}, "user_consent.version"),
        ({"user_consent": {"version": "1", "colour": 1}, "form_secret": "s"}, "colour"),
        (
            {
                "user_consent": {"version": "1", "server_notice_content": {"msgtype": "m.text"}},
                "form_secret": "s",
            },
            "user_consent.server_notice_content.body",
        ),
        ({"user_consent": "yes", "form_secret": "s"}, "user_consent: expected a mapping"),
        (
            {"enable_registration": True, "enable_registration_captcha": False},
            "enable_registration: open registration without any verification",
        ),
    ],
)
def test_bad_values(options: dict[str, Any], message: str) -> None:
    assert message in error_of(**options)


async def test_required_email_that_cannot_be_verified_stops_the_server(
    make_homeserver: HarnessFactory,
) -> None:
    """Email verification is not wired in this build: requiring it stops the server at
    start-up with a config error (as Synapse without email settings)."""
    with pytest.raises(ConfigError, match="registrations_require_3pid asks for an email"):
        await make_homeserver(registrations_require_3pid=["email"])
    with pytest.raises(ConfigError, match="phone number"):
        await make_homeserver(registrations_require_3pid=["msisdn"])
    # unless phone numbers are not offered at all
    hs = await make_homeserver(
        registrations_require_3pid=["msisdn"], disable_msisdn_registration=True
    )
    first = await hs.client.post("/_matrix/client/v3/register", json={})
    assert (await first.json())["flows"] == [{"stages": ["m.login.dummy"]}]
