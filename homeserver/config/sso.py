"""Single sign-on settings: ``cas_config`` (a CAS server users log in through) and
``sso`` (settings shared by every identity provider), under Synapse's names.

As in Synapse, a ``cas_config`` that is absent, null or an empty mapping leaves CAS
off; any other mapping turns it on unless it says ``enabled: false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from homeserver.config._reader import (
    Invalid,
    Reader,
    describe,
    int_between,
    list_of,
    to_bool,
    to_nonempty_str,
    to_str,
)


def to_cas_server_url(value: object) -> str:
    """The CAS server's base URL (``https://cas.example.com/cas``), kept without a
    trailing slash: the server's endpoints (``/login``, ``/proxyValidate``) are
    appended to it."""
    text = to_nonempty_str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"expected an http:// or https:// URL, got {describe(value)}")
    if parts.query or parts.fragment:
        raise Invalid("must not have a query string or fragment")
    return text.rstrip("/")


def to_required_attributes(value: object) -> Mapping[str, str | None]:
    """``required_attributes``: attribute name -> the value it must have (null: the
    attribute must only be present)."""
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping, got {describe(value)}")
    required: dict[str, str | None] = {}
    for name, wanted in value.items():
        if not isinstance(name, str) or not name:
            raise Invalid(f"attribute names must be non-empty strings, got {describe(name)}")
        if wanted is not None and not isinstance(wanted, str):
            raise Invalid(f"expected a string or null, got {describe(wanted)}", f".{name}")
        required[name] = wanted
    return MappingProxyType(required)


def to_numeric_ids_prefix(value: object) -> str:
    text = to_str(value)
    if not text.isalnum():
        raise Invalid("only letters and digits are allowed")
    return text


@dataclass(frozen=True, slots=True)
class CasConfig:
    """``cas_config``: log users in through a CAS server (Central Authentication
    Service, protocol versions 1 to 3)."""

    enabled: bool = False
    server_url: str = ""
    # None: validate tickets at /proxyValidate; 3: at /p3/proxyValidate
    protocol_version: int | None = None
    # the CAS attribute whose (first) value is a new user's display name
    displayname_attribute: str | None = None
    # every attribute listed must be present (with the given value, unless null)
    required_attributes: Mapping[str, str | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # create an account on a CAS user's first login (else only existing users log in)
    enable_registration: bool = True
    # CAS user names made only of digits get numeric_ids_prefix in front
    allow_numeric_ids: bool = False
    numeric_ids_prefix: str = "u"
    # how clients show the provider (GET /login's identity_providers)
    idp_name: str = "CAS"
    idp_icon: str | None = None
    idp_brand: str | None = None

    @staticmethod
    def parse(reader: Reader) -> CasConfig:
        if not reader.keys():
            reader.finish()
            return CasConfig()
        enabled = reader.get("enabled", to_bool, True)
        if enabled:
            server_url = reader.require("server_url", to_cas_server_url) or ""
        else:
            server_url = reader.get("server_url", to_cas_server_url, "")
        config = CasConfig(
            enabled=enabled,
            server_url=server_url,
            protocol_version=reader.optional("protocol_version", int_between(1, 3)),
            displayname_attribute=reader.optional("displayname_attribute", to_nonempty_str),
            required_attributes=reader.get(
                "required_attributes", to_required_attributes, MappingProxyType({})
            ),
            enable_registration=reader.get("enable_registration", to_bool, True),
            allow_numeric_ids=reader.get("allow_numeric_ids", to_bool, False),
            numeric_ids_prefix=reader.get("numeric_ids_prefix", to_numeric_ids_prefix, "u"),
            idp_name=reader.get("idp_name", to_nonempty_str, "CAS"),
            idp_icon=reader.optional("idp_icon", to_nonempty_str),
            idp_brand=reader.optional("idp_brand", to_nonempty_str),
        )
        reader.finish()
        return config


@dataclass(frozen=True, slots=True)
class SsoConfig:
    """``sso``: settings of every single sign-on provider.

    ``client_whitelist``: client URLs (prefixes) trusted to receive a login token
    straight away; any other ``redirectUrl`` gets a page asking the user to confirm
    that the site may access their account. An entry matches a URL that equals it or
    continues it after a ``/`` (so ``https://app.example.com`` does not match
    ``https://app.example.com.evil.net``)."""

    client_whitelist: tuple[str, ...] = ()

    @staticmethod
    def parse(reader: Reader) -> SsoConfig:
        config = SsoConfig(
            client_whitelist=reader.get("client_whitelist", list_of(to_nonempty_str), ())
        )
        reader.finish()
        return config
