"""``email`` (SMTP settings and the mails of third-party ID validation) and the
top-level options about users' third-party IDs, under Synapse's names.

As in Synapse, an ``email`` section that is present and not empty means this server
can verify email addresses itself (``EmailConfig.can_verify_email``): it then mails
validation links for registration, password reset and adding an address, and needs
``notif_from``.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from homeserver.config._reader import (
    Invalid,
    Reader,
    describe,
    one_of,
    to_bool,
    to_nonempty_str,
    to_path,
    to_port,
    to_positive_duration_ms,
    to_str,
)

# Synapse's default mail subjects (``email.subjects``); ``%(server_name)s`` and
# ``%(app)s`` are filled in. Those of notification mails are accepted, not used.
DEFAULT_SUBJECTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "message_from_person_in_room": "[%(app)s] You have a message on %(app)s from "
        "%(person)s in the %(room)s room...",
        "message_from_person": "[%(app)s] You have a message on %(app)s from %(person)s...",
        "messages_from_person": "[%(app)s] You have messages on %(app)s from %(person)s...",
        "messages_in_room": "[%(app)s] You have messages on %(app)s in the %(room)s room...",
        "messages_in_room_and_others": "[%(app)s] You have messages on %(app)s in the "
        "%(room)s room and others...",
        "messages_from_person_and_others": "[%(app)s] You have messages on %(app)s from "
        "%(person)s and others...",
        "invite_from_person": "[%(app)s] %(person)s has invited you to chat on %(app)s...",
        "invite_from_person_to_room": "[%(app)s] %(person)s has invited you to join the "
        "%(room)s room on %(app)s...",
        "invite_from_person_to_space": "[%(app)s] %(person)s has invited you to join the "
        "%(space)s space on %(app)s...",
        "password_reset": "[%(server_name)s] Password reset",
        "email_validation": "[%(server_name)s] Validate your email",
        "email_already_in_use": "[%(server_name)s] Email already in use",
    }
)


def to_mail_address(value: object) -> str:
    """``notif_from``: an RFC 5322 address, with or without a display name."""
    text = to_nonempty_str(value)
    if email.utils.parseaddr(text)[1] == "":
        raise Invalid(f"not a mail address: {describe(value)}")
    return text


def to_subjects(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping, got {describe(value)}")
    subjects = dict(DEFAULT_SUBJECTS)
    for key, subject in value.items():
        if key not in DEFAULT_SUBJECTS:
            raise Invalid(f"unknown subject {describe(key)}", f".{key}")
        if not isinstance(subject, str):
            raise Invalid(f"expected a string, got {describe(subject)}", f".{key}")
        subjects[str(key)] = subject
    return MappingProxyType(subjects)


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """How this server sends mail. Durations in milliseconds."""

    # an ``email`` section is there: this server validates email addresses itself
    can_verify_email: bool = False
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_pass: str | None = field(default=None, repr=False)
    # implicit TLS from the first byte (SMTPS, port 465)
    force_tls: bool = False
    # STARTTLS when the server offers it; required with require_transport_security
    enable_tls: bool = True
    require_transport_security: bool = False
    # the name the SMTP server's certificate is checked against (default: smtp_host)
    tlsname: str | None = None
    notif_from: str | None = None
    app_name: str = "Matrix"
    validation_token_lifetime: int = 3_600_000
    subjects: Mapping[str, str] = field(default_factory=lambda: DEFAULT_SUBJECTS)
    # templates found here replace the built-in ones of the same name
    template_dir: Path | None = None

    @staticmethod
    def parse(reader: Reader) -> EmailConfig:
        configured = bool(reader.keys())
        force_tls = reader.get("force_tls", to_bool, False)
        settings = EmailConfig(
            can_verify_email=configured,
            smtp_host=reader.get("smtp_host", to_nonempty_str, "localhost"),
            smtp_port=reader.get("smtp_port", to_port, 465 if force_tls else 25),
            smtp_user=reader.optional("smtp_user", to_str),
            smtp_pass=reader.optional("smtp_pass", to_str),
            force_tls=force_tls,
            enable_tls=reader.get("enable_tls", to_bool, True),
            require_transport_security=reader.get("require_transport_security", to_bool, False),
            tlsname=reader.optional("tlsname", to_nonempty_str),
            notif_from=reader.optional("notif_from", to_mail_address),
            app_name=reader.get("app_name", to_nonempty_str, "Matrix"),
            validation_token_lifetime=reader.get(
                "validation_token_lifetime", to_positive_duration_ms, 3_600_000
            ),
            subjects=reader.get("subjects", to_subjects, DEFAULT_SUBJECTS),
            template_dir=reader.optional("template_dir", to_path),
        )
        if settings.force_tls and not settings.enable_tls:
            reader.error("force_tls", "email.force_tls requires email.enable_tls to be true")
        if settings.require_transport_security and not settings.enable_tls:
            reader.error(
                "require_transport_security",
                "email.require_transport_security requires email.enable_tls to be true",
            )
        if configured and settings.notif_from is None:
            reader.error(
                "notif_from",
                "required when the email section is set (the sender of validation mails)",
            )
        if settings.template_dir is not None and not settings.template_dir.is_dir():
            reader.error("template_dir", f"not a directory: {settings.template_dir}")
        reader.finish()
        return settings


@dataclass(frozen=True, slots=True)
class ThreepidPattern:
    """One entry of ``allowed_local_3pids``: addresses of ``medium`` matching
    ``pattern`` (a regular expression matched from the start) may be used."""

    medium: str
    pattern: re.Pattern[str]

    @staticmethod
    def parse(reader: Reader) -> ThreepidPattern | None:
        medium = reader.require("medium", one_of("email", "msisdn"))
        pattern = reader.require("pattern", to_regex)
        reader.finish()
        if medium is None or pattern is None:
            return None
        return ThreepidPattern(medium, pattern)


def to_regex(value: object) -> re.Pattern[str]:
    text = to_str(value)
    try:
        return re.compile(text)
    except re.error as exc:
        raise Invalid(f"not a regular expression: {exc}") from None


def parse_allowed_local_3pids(reader: Reader) -> tuple[ThreepidPattern, ...] | None:
    """``allowed_local_3pids``; None when absent (every address is allowed)."""
    children = reader.children("allowed_local_3pids")
    if children is None:
        return None
    patterns = (ThreepidPattern.parse(child) for child in children)
    return tuple(p for p in patterns if p is not None)


@dataclass(frozen=True, slots=True)
class ThreepidDelegates:
    """``account_threepid_delegates``: ``msisdn`` is the base URL of the identity
    server that validates phone numbers for this server (Synapse's only delegate
    left); None: phone numbers are not supported."""

    msisdn: str | None = None

    @staticmethod
    def parse(reader: Reader) -> ThreepidDelegates:
        delegates = ThreepidDelegates(msisdn=reader.optional("msisdn", to_http_base_url))
        reader.finish()
        return delegates


def to_http_base_url(value: object) -> str:
    text = to_nonempty_str(value).strip()
    if not re.match(r"^https?://[^/\s]+", text):
        raise Invalid(f"expected an http:// or https:// URL, got {describe(value)}")
    return text.rstrip("/")
