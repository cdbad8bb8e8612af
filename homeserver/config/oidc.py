"""OpenID Connect identity providers: ``oidc_providers`` (a list) and Synapse's legacy
single ``oidc_config`` section, under Synapse's names.

Each provider gets the id ``oidc-<idp_id>`` (the legacy section's provider is just
``oidc``, as in Synapse, so its users' links survive a move to ``oidc_providers``).
Templates of ``user_mapping_provider.config`` are Jinja templates rendered in a
sandbox with the provider's claims as ``user``; they are compiled here so that a
broken template is a start-up error naming its key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, cast
from urllib.parse import urlsplit

from homeserver.config._reader import (
    Invalid,
    Reader,
    describe,
    list_of,
    one_of,
    to_bool,
    to_nonempty_str,
)

# jinja2 is imported on first use: only by a server with OIDC providers.
if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

LEGACY_IDP_ID: Final = "oidc"
_IDP_ID: Final = re.compile(r"[A-Za-z0-9._~-]{1,250}")

ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
PkceMethod = Literal["auto", "always", "never"]
UserProfileMethod = Literal["auto", "userinfo_endpoint"]


def _finalize(value: object) -> object:
    """Claims a template names that the provider did not send render as nothing."""
    return "" if value is None else value


def template_environment() -> SandboxedEnvironment:
    """The sandbox every mapping template is compiled in (no attribute access to
    Python internals, no file loading)."""
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(finalize=_finalize, autoescape=False)


@cache
def _checking_environment() -> SandboxedEnvironment:
    """The environment the config's templates are compiled in to check them."""
    return template_environment()


def to_template(value: object) -> str:
    """A Jinja template's source, checked to compile."""
    from jinja2 import TemplateSyntaxError

    text = to_nonempty_str(value)
    try:
        _checking_environment().from_string(text)
    except TemplateSyntaxError as exc:
        raise Invalid(f"invalid Jinja template: {exc.message}") from None
    return text


def to_idp_id(value: object) -> str:
    text = to_nonempty_str(value)
    if not _IDP_ID.fullmatch(text):
        raise Invalid(
            "must be 1 to 250 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-', "
            f"got {describe(value)}"
        )
    return text


def to_http_url(value: object) -> str:
    text = to_nonempty_str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"expected an http:// or https:// URL, got {describe(value)}")
    return text


@dataclass(frozen=True, slots=True)
class AttributeRequirement:
    """One of ``attribute_requirements``: the claim ``attribute`` must be ``value``
    (or one of ``one_of``); a list claim needs one matching member."""

    attribute: str
    values: tuple[str, ...]

    def met_by(self, claims: dict[str, object]) -> bool:
        claim = claims.get(self.attribute)
        if isinstance(claim, list):
            return any(isinstance(item, str) and item in self.values for item in claim)
        return isinstance(claim, str) and claim in self.values


def to_attribute_requirement(value: object) -> AttributeRequirement:
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping, got {describe(value)}")
    unknown = set(value) - {"attribute", "value", "one_of"}
    if unknown:
        raise Invalid(f"unknown key {sorted(unknown)[0]!r}")
    attribute = value.get("attribute")
    if not isinstance(attribute, str) or not attribute:
        raise Invalid("attribute: a non-empty string is required", ".attribute")
    if ("value" in value) == ("one_of" in value):
        raise Invalid("exactly one of value and one_of is required")
    if "value" in value:
        wanted = value["value"]
        if not isinstance(wanted, str):
            raise Invalid(f"expected a string, got {describe(wanted)}", ".value")
        return AttributeRequirement(attribute, (wanted,))
    choices = value["one_of"]
    if (
        not isinstance(choices, list)
        or not choices
        or not all(isinstance(choice, str) for choice in choices)
    ):
        raise Invalid("expected a non-empty list of strings", ".one_of")
    return AttributeRequirement(attribute, tuple(choices))


@dataclass(frozen=True, slots=True)
class OidcMappingConfig:
    """``user_mapping_provider.config``: how claims become a Matrix user."""

    subject_template: str = "{{ user.sub }}"
    localpart_template: str | None = None
    display_name_template: str | None = None
    email_template: str | None = None

    @staticmethod
    def parse(reader: Reader) -> OidcMappingConfig:
        claim = reader.get("subject_claim", to_nonempty_str, "sub")
        subject = reader.get("subject_template", to_template, "{{ user." + claim + " }}")
        if reader.get("confirm_localpart", to_bool, False):
            reader.error(
                "confirm_localpart",
                "asking users to confirm their user name is not supported; "
                "set a localpart_template instead",
            )
        config = OidcMappingConfig(
            subject_template=subject,
            localpart_template=reader.optional("localpart_template", to_template),
            display_name_template=reader.optional("display_name_template", to_template),
            email_template=reader.optional("email_template", to_template),
        )
        reader.finish()
        return config


@dataclass(frozen=True, slots=True)
class OidcProviderConfig:
    """One OpenID Connect provider users log in through (authorization code flow)."""

    # as clients see it: "oidc-<idp_id>" ("oidc" for the legacy oidc_config)
    idp_id: str
    idp_name: str
    issuer: str
    client_id: str
    client_secret: str | None = None
    client_auth_method: ClientAuthMethod = "client_secret_basic"
    idp_icon: str | None = None
    idp_brand: str | None = None
    discover: bool = True
    pkce_method: PkceMethod = "auto"
    scopes: tuple[str, ...] = ("openid",)
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None
    # allow an http:// issuer and endpoints (tests, development)
    skip_verification: bool = False
    user_profile_method: UserProfileMethod = "auto"
    # a new identity may take over an account whose localpart it maps to
    allow_existing_users: bool = False
    enable_registration: bool = True
    user_mapping: OidcMappingConfig = field(default_factory=OidcMappingConfig)
    attribute_requirements: tuple[AttributeRequirement, ...] = ()

    @staticmethod
    def parse(reader: Reader, idp_id: str) -> OidcProviderConfig | None:
        """The provider at ``reader``; None (with the errors recorded) if unusable."""
        idp_name = reader.get("idp_name", to_nonempty_str, "OIDC")
        issuer = reader.require("issuer", to_http_url)
        client_id = reader.require("client_id", to_nonempty_str)
        client_auth_method = cast(
            ClientAuthMethod,
            reader.get(
                "client_auth_method",
                one_of("client_secret_basic", "client_secret_post", "none"),
                "client_secret_basic",
            ),
        )
        client_secret = reader.optional("client_secret", to_nonempty_str)
        secret_path = reader.optional("client_secret_path", to_nonempty_str)
        if secret_path is not None:
            if client_secret is not None:
                reader.error("client_secret_path", "give client_secret or client_secret_path")
            else:
                try:
                    client_secret = Path(secret_path).read_text().strip()
                except OSError as exc:
                    reader.error("client_secret_path", f"cannot be read: {exc.strerror}")
        if client_secret is None and client_auth_method != "none":
            reader.error(
                "client_secret",
                f"this option is required unless client_auth_method is none "
                f"({client_auth_method} sends it)",
            )
        discover = reader.get("discover", to_bool, True)
        skip_verification = reader.get("skip_verification", to_bool, False)
        endpoints = {
            name: reader.optional(name, to_http_url)
            for name in (
                "authorization_endpoint",
                "token_endpoint",
                "userinfo_endpoint",
                "jwks_uri",
            )
        }
        scopes = tuple(reader.get("scopes", list_of(to_nonempty_str), ("openid",)))
        if "openid" not in scopes:
            reader.error("scopes", 'must include "openid"')
        user_profile_method = cast(
            UserProfileMethod,
            reader.get("user_profile_method", one_of("auto", "userinfo_endpoint"), "auto"),
        )
        if not discover:
            for name in ("authorization_endpoint", "token_endpoint"):
                if endpoints[name] is None:
                    reader.error(name, "this option is required when discover is false")
            if endpoints["jwks_uri"] is None:
                reader.error("jwks_uri", "this option is required when discover is false")
            if (
                user_profile_method == "userinfo_endpoint"
                and endpoints["userinfo_endpoint"] is None
            ):
                reader.error(
                    "userinfo_endpoint",
                    "this option is required when user_profile_method is userinfo_endpoint",
                )
        if not skip_verification:
            for name, url in (("issuer", issuer), *endpoints.items()):
                if url is not None and not url.startswith("https://"):
                    reader.error(name, "must be an https:// URL (unless skip_verification)")
        mapping_reader = reader.child("user_mapping_provider")
        mapping = OidcMappingConfig.parse(mapping_reader.child("config"))
        mapping_reader.finish()
        requirements = (
            reader.optional("attribute_requirements", list_of(to_attribute_requirement)) or ()
        )
        config = OidcProviderConfig(
            idp_id=idp_id,
            idp_name=idp_name,
            issuer=issuer or "",
            client_id=client_id or "",
            client_secret=client_secret,
            client_auth_method=client_auth_method,
            idp_icon=reader.optional("idp_icon", to_nonempty_str),
            idp_brand=reader.optional("idp_brand", to_nonempty_str),
            discover=discover,
            pkce_method=cast(
                PkceMethod, reader.get("pkce_method", one_of("auto", "always", "never"), "auto")
            ),
            scopes=scopes,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            userinfo_endpoint=endpoints["userinfo_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            skip_verification=skip_verification,
            user_profile_method=user_profile_method,
            allow_existing_users=reader.get("allow_existing_users", to_bool, False),
            enable_registration=reader.get("enable_registration", to_bool, True),
            user_mapping=mapping,
            attribute_requirements=tuple(requirements),
        )
        reader.finish()
        if issuer is None or client_id is None:
            return None
        return config


def parse_oidc_providers(reader: Reader) -> tuple[OidcProviderConfig, ...]:
    """``oidc_providers`` and the legacy ``oidc_config``, in that order; idp_ids
    must be unique."""
    providers: list[OidcProviderConfig] = []
    for item in reader.children("oidc_providers") or []:
        raw_id = item.require("idp_id", to_idp_id)
        item.require("idp_name", to_nonempty_str)
        idp_id = raw_id if raw_id in (None, LEGACY_IDP_ID) else f"oidc-{raw_id}"
        # a provider without a usable id is still read, to report its other errors
        provider = OidcProviderConfig.parse(item, idp_id or "")
        if provider is not None and idp_id is not None:
            providers.append(provider)
    legacy = reader.child("oidc_config")
    if legacy.keys():
        if legacy.get("enabled", to_bool, True):
            provider = OidcProviderConfig.parse(legacy, LEGACY_IDP_ID)
            if provider is not None:
                providers.append(provider)
        else:
            for key in legacy.keys():
                legacy.raw(key)
    seen: set[str] = set()
    for provider in providers:
        if provider.idp_id in seen:
            reader.error("oidc_providers", f"more than one provider has the id {provider.idp_id}")
        seen.add(provider.idp_id)
    return tuple(providers)
