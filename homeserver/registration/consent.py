"""The privacy policy users agree to (``user_consent``), as Synapse's consent resource.

A link to the policy page names the user (``u``, a user ID or localpart) with
``h = hex(HMAC-SHA256(form_secret, u))``, so only the user it was made for can
agree through it. The page is ``<template_dir>/en/<version>.html`` (a Jinja2
template given ``user``, ``userhmac``, ``version``, ``has_consented`` and
``public_version``), or a built-in page without a ``template_dir``; agreeing
records the version on the account and shows ``success.html``.
"""

from __future__ import annotations

import hmac
from hashlib import sha256
from html import escape
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from homeserver.clock import Clock
from homeserver.config.registration import ConsentConfig
from homeserver.errors import Forbidden, MatrixError, NotFound
from storage.stores import Stores

# jinja2 is imported only when a template_dir is configured.
if TYPE_CHECKING:
    import jinja2

# The language of the templates (Synapse picks "en" too).
TEMPLATE_LANGUAGE: Final = "en"


class ConsentNotGiven(MatrixError):
    """403 M_CONSENT_NOT_GIVEN, with the page where the user can agree."""

    def __init__(self, message: str, consent_uri: str) -> None:
        super().__init__(403, "M_CONSENT_NOT_GIVEN", message, extra={"consent_uri": consent_uri})


class ConsentService:
    def __init__(
        self,
        config: ConsentConfig,
        form_secret: str,
        public_baseurl: str,
        server_name: str,
        stores: Stores,
        clock: Clock,
    ) -> None:
        self.config = config
        self._secret = form_secret.encode("utf-8")
        self._baseurl = public_baseurl
        self._server_name = server_name
        self._stores = stores
        self._clock = clock
        self._templates: jinja2.Environment | None = None
        if config.template_dir is not None:
            import jinja2

            self._templates = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(config.template_dir)),
                autoescape=jinja2.select_autoescape(["html", "htm", "xml"]),
            )

    @property
    def version(self) -> str:
        return self.config.version

    def policy_url(self) -> str:
        """The public page of the current version (m.login.terms' ``url``)."""
        return f"{self._baseurl}_matrix/consent?{urlencode({'v': self.config.version})}"

    def terms_params(self) -> dict[str, Any]:
        """The ``params`` of the m.login.terms stage."""
        return {
            "policies": {
                "privacy_policy": {
                    "version": self.config.version,
                    "en": {"name": self.config.policy_name, "url": self.policy_url()},
                }
            }
        }

    def user_mac(self, user: str) -> str:
        return hmac.new(self._secret, user.encode("utf-8"), sha256).hexdigest()

    def consent_uri(self, user: str) -> str:
        """The page where ``user`` (a localpart, as Synapse links it) can agree."""
        return f"{self._baseurl}_matrix/consent?{urlencode({'u': user, 'h': self.user_mac(user)})}"

    def _check_mac(self, user: str, mac: str) -> None:
        if not hmac.compare_digest(self.user_mac(user).encode(), mac.encode("utf-8", "replace")):
            raise Forbidden("HMAC incorrect")

    def _qualify(self, user: str) -> str:
        return user if user.startswith("@") else f"@{user}:{self._server_name}"

    async def policy_page(self, version: str | None, user: str, mac: str | None) -> str:
        """GET /_matrix/consent: the policy ``version`` (default: the current one),
        with a form to agree when ``user`` and its ``mac`` are given."""
        version = version or self.config.version
        _check_version(version)
        has_consented = False
        public_version = user == ""
        if not public_version:
            if mac is None:
                raise MatrixError(400, "M_MISSING_PARAM", "Missing bytes argument h")
            self._check_mac(user, mac)
            record = await self._stores.consent.get(self._qualify(user))
            if record is None:
                raise NotFound("Unknown user")
            has_consented = record.consent_version == version
        return self._render(
            f"{version}.html",
            user=user,
            userhmac=None if public_version else mac,
            version=version,
            has_consented=has_consented,
            public_version=public_version,
        )

    async def agree(self, version: str, user: str, mac: str) -> str:
        """POST /_matrix/consent: record that ``user`` agreed to ``version``; the
        success page."""
        _check_version(version)
        self._check_mac(user, mac)
        await self.record(self._qualify(user), version)
        return self._render("success.html")

    async def record(self, user_id: str, version: str | None = None) -> None:
        """Record that ``user_id`` agreed to ``version`` (default: the current one)."""
        if not await self._stores.consent.set_consent_version(
            user_id, version or self.config.version, self._clock.time_ms()
        ):
            raise NotFound("Unknown user")

    async def check_consented(self, user_id: str, room_id: str | None = None) -> None:
        """With ``block_events_error``: 403 M_CONSENT_NOT_GIVEN unless ``user_id`` has
        agreed to the current version. A membership change in the user's server
        notices room (``room_id``) is always allowed, as Synapse: that is where the
        notice asking for consent arrives."""
        message = self.config.block_events_error
        if message is None:
            return
        if room_id is not None and await self._stores.server_notices.room_of(user_id) == room_id:
            return
        record = await self._stores.consent.get(user_id)
        if record is None or record.consent_version == self.config.version:
            return
        localpart = user_id[1:].split(":", 1)[0]
        uri = self.consent_uri(localpart)
        raise ConsentNotGiven(fill_consent_uri(message, uri), uri)

    def _render(self, name: str, **values: Any) -> str:
        if self._templates is None:
            return _builtin_page(name, values)
        import jinja2

        try:
            template = self._templates.get_template(f"{TEMPLATE_LANGUAGE}/{name}")
        except jinja2.TemplateNotFound:
            raise NotFound("Unknown policy version") from None
        return template.render(**values)


def _check_version(version: str) -> None:
    if not version or "/" in version or "\\" in version or version.startswith("."):
        raise NotFound("Unknown policy version")


def fill_consent_uri(message: str, uri: str) -> str:
    """``message`` with ``%(consent_uri)s`` replaced (Synapse's %-formatting); a
    message that is not a valid format string is used as written."""
    try:
        return message % {"consent_uri": uri}
    except (KeyError, ValueError, TypeError):
        return message


def _builtin_page(name: str, values: dict[str, Any]) -> str:
    """The page without a ``template_dir``: the policy's version and a form to agree."""
    if name == "success.html":
        body = "<p>Thank you: your agreement to the privacy policy has been recorded.</p>"
    else:
        version = escape(str(values["version"]))
        body = f"<h1>Privacy policy</h1>\n<p>Version {version} of this server's privacy policy.</p>"
        if values["has_consented"]:
            body += "\n<p>You have agreed to this version.</p>"
        elif not values["public_version"]:
            body += (
                '\n<form method="post" action="consent">'
                f'<input type="hidden" name="v" value="{version}">'
                f'<input type="hidden" name="u" value="{escape(str(values["user"]), quote=True)}">'
                f'<input type="hidden" name="h" value="{escape(str(values["userhmac"]), quote=True)}">'
                '<input type="submit" value="I agree"></form>'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Privacy policy</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
