"""From an OIDC user's claims to what a Matrix account is made of, as Synapse's
default (Jinja) mapping provider does: the remote user id from
``subject_template`` (``{{ user.sub }}``), the localpart from
``localpart_template`` (mapped to the localpart grammar, and suffixed with 1, 2 ...
while taken), display name and email from their templates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.config import OidcMappingConfig
from homeserver.config.oidc import template_environment
from homeserver.sso.localparts import map_username_to_localpart


class MappingFailed(Exception):
    """The claims do not make a user; the message says why."""


@dataclass(frozen=True)
class MappedUser:
    remote_user_id: str
    localpart: str | None
    display_name: str | None
    email: str | None


class ClaimsMapper:
    def __init__(self, config: OidcMappingConfig) -> None:
        env = template_environment()
        self._subject = env.from_string(config.subject_template)
        self._localpart = (
            env.from_string(config.localpart_template) if config.localpart_template else None
        )
        self._display_name = (
            env.from_string(config.display_name_template) if config.display_name_template else None
        )
        self._email = env.from_string(config.email_template) if config.email_template else None

    @staticmethod
    def _render(template: Any, claims: Mapping[str, Any]) -> str:
        from jinja2 import TemplateError  # loaded by template_environment() already

        try:
            return str(template.render(user=claims)).strip()
        except TemplateError as exc:
            raise MappingFailed(f"a mapping template failed: {exc}") from None

    def map(self, claims: Mapping[str, Any]) -> MappedUser:
        remote = self._render(self._subject, claims)
        if not remote:
            raise MappingFailed("the provider sent no subject for the user")
        localpart = None
        if self._localpart is not None:
            rendered = self._render(self._localpart, claims)
            localpart = map_username_to_localpart(rendered) if rendered else None
        display_name = self._render(self._display_name, claims) if self._display_name else ""
        email = self._render(self._email, claims) if self._email else ""
        return MappedUser(remote, localpart, display_name or None, email or None)


def localpart_candidate(localpart: str, failures: int) -> str:
    """The localpart tried after ``failures`` taken ones (``alice``, ``alice1`` ...)."""
    return localpart + (str(failures) if failures else "")
