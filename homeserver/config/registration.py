"""Registration guards: the captcha (``recaptcha_*``, ``enable_registration_captcha``),
the ``user_consent`` section (a privacy policy users agree to), ``form_secret`` and
the third-party-ID options of registration, under Synapse's names.

Secrets may be given inline or, with the ``*_path`` variant, in a file (whose
surrounding whitespace is dropped); giving both is an error, as in Synapse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from homeserver.config._reader import (
    Invalid,
    Reader,
    describe,
    list_of,
    one_of,
    to_bool,
    to_nonempty_str,
    to_path,
)

# Synapse's default: Google's reCAPTCHA verification endpoint (recaptcha.net is
# reachable where google.com is not).
DEFAULT_SITEVERIFY_API: Final = "https://www.recaptcha.net/recaptcha/api/siteverify"


def to_siteverify_url(value: object) -> str:
    """An absolute http(s) URL, kept as written (no slash is added: it names a file)."""
    from urllib.parse import urlsplit

    text = to_nonempty_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"expected an http:// or https:// URL, got {describe(value)}")
    return text


def read_secret(reader: Reader, key: str) -> str | None:
    """The secret ``key``, inline or from the file named by ``<key>_path``."""
    inline = reader.optional(key, to_nonempty_str)
    path = reader.optional(f"{key}_path", to_path)
    if path is None:
        return inline
    if inline is not None:
        reader.error(f"{key}_path", f"{key} and {key}_path are mutually incompatible")
        return inline
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reader.error(f"{key}_path", f"cannot read {path}: {error}")
        return None
    if not text:
        reader.error(f"{key}_path", f"{path} is empty")
        return None
    return text


def to_notice_content(value: object) -> Mapping[str, Any]:
    """``server_notice_content``: the content of an m.room.message, with a ``body``."""
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping, got {describe(value)}")
    if not isinstance(value.get("body"), str):
        raise Invalid("must have a string 'body'", ".body")
    return MappingProxyType(dict(value))


def to_version(value: object) -> str:
    """A policy version: a string or a number written bare in YAML (``1.0``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    text = to_nonempty_str(value)
    if "/" in text or "\\" in text or text.startswith("."):
        raise Invalid("must not contain '/' or '\\' nor start with '.'")
    return text


@dataclass(frozen=True, slots=True)
class ConsentConfig:
    """``user_consent``: a privacy policy users agree to on /_matrix/consent.

    ``template_dir`` holds one folder per language (``en``) with ``<version>.html``
    and ``success.html`` (Jinja2 templates); without it a built-in page links the
    policy nowhere else and only records consent."""

    version: str
    template_dir: Path | None = None
    # m.login.terms in every registration flow
    require_at_registration: bool = False
    policy_name: str = "Privacy Policy"
    # a server notice asking users who have not consented to do so
    server_notice_content: Mapping[str, Any] | None = None
    send_server_notice_to_guests: bool = False
    # refuse events from users who have not consented, with this message
    # (%(consent_uri)s is replaced by their consent page)
    block_events_error: str | None = None

    @staticmethod
    def parse(reader: Reader) -> ConsentConfig | None:
        if not reader.keys():
            reader.finish()
            return None
        version = reader.require("version", to_version) or "0"
        template_dir = reader.optional("template_dir", to_path)
        if template_dir is not None and not template_dir.is_dir():
            reader.error("template_dir", f"could not find template directory {template_dir}")
        config = ConsentConfig(
            version=version,
            template_dir=template_dir,
            require_at_registration=reader.get("require_at_registration", to_bool, False),
            policy_name=reader.get("policy_name", to_nonempty_str, "Privacy Policy"),
            server_notice_content=reader.optional("server_notice_content", to_notice_content),
            send_server_notice_to_guests=reader.get("send_server_notice_to_guests", to_bool, False),
            block_events_error=reader.optional("block_events_error", to_nonempty_str),
        )
        reader.finish()
        return config


@dataclass(frozen=True, slots=True)
class RegistrationGuardsConfig:
    """The top-level options of this module, read together."""

    enable_registration_captcha: bool = False
    recaptcha_public_key: str | None = None
    recaptcha_private_key: str | None = field(default=None, repr=False)
    recaptcha_siteverify_api: str = DEFAULT_SITEVERIFY_API
    registrations_require_3pid: tuple[str, ...] = ()
    disable_msisdn_registration: bool = False
    enable_registration_token_3pid_bypass: bool = False
    form_secret: str | None = field(default=None, repr=False)
    user_consent: ConsentConfig | None = None

    @staticmethod
    def parse(reader: Reader) -> RegistrationGuardsConfig:
        """Read from the top-level mapping (no ``finish``: the caller's reader goes on)."""
        config = RegistrationGuardsConfig(
            enable_registration_captcha=reader.get("enable_registration_captcha", to_bool, False),
            recaptcha_public_key=read_secret(reader, "recaptcha_public_key"),
            recaptcha_private_key=read_secret(reader, "recaptcha_private_key"),
            recaptcha_siteverify_api=reader.get(
                "recaptcha_siteverify_api", to_siteverify_url, DEFAULT_SITEVERIFY_API
            ),
            registrations_require_3pid=reader.get(
                "registrations_require_3pid", list_of(one_of("email", "msisdn")), ()
            ),
            disable_msisdn_registration=reader.get("disable_msisdn_registration", to_bool, False),
            enable_registration_token_3pid_bypass=reader.get(
                "enable_registration_token_3pid_bypass", to_bool, False
            ),
            form_secret=read_secret(reader, "form_secret"),
            user_consent=ConsentConfig.parse(reader.child("user_consent")),
        )
        if config.enable_registration_captcha and not (
            config.recaptcha_public_key and config.recaptcha_private_key
        ):
            reader.error(
                "enable_registration_captcha",
                "needs recaptcha_public_key and recaptcha_private_key",
            )
        if config.user_consent is not None and config.form_secret is None:
            reader.error(
                "user_consent",
                "needs form_secret (the links to the consent page are signed with it)",
            )
        return config
