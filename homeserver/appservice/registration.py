"""Application service registrations: the YAML files named by
``app_service_config_files``, read into validated `ApplicationService` values.

Pure: parsing takes the loaded YAML mapping and gives a registration back (or a
`ConfigError` naming the file and the field); matching a user ID, an alias or a
room ID against a namespace is a regex match at the start of the string, as
Synapse matches (``re.match``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from homeserver.config._reader import (
    ConfigError,
    Invalid,
    Reader,
    describe,
    list_of,
    to_bool,
    to_nonempty_str,
    to_str,
)

# The unstable names (MSC2409) a registration may use for ``receive_ephemeral``.
_EPHEMERAL_KEYS = ("receive_ephemeral", "de.sorunome.msc2409.push_ephemeral", "push_ephemeral")
# MSC3202: device masquerading, and to-device, device lists and key counts pushed.
MSC3202_KEY = "org.matrix.msc3202"
# MSC4190 (the stable successor of MSC3202's device management for appservices).
MSC4190_KEY = "io.element.msc4190"


@dataclass(frozen=True)
class Namespace:
    """One entry of a namespace list: a regex, and whether the AS claims it alone."""

    regex: re.Pattern[str]
    exclusive: bool
    group_id: str | None = None

    def matches(self, text: str) -> bool:
        return self.regex.match(text) is not None


@dataclass(frozen=True)
class ApplicationService:
    """One registered application service."""

    id: str
    url: str | None
    as_token: str = field(repr=False)
    hs_token: str = field(repr=False)
    sender: str  # the full user ID of sender_localpart
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    rate_limited: bool = True
    protocols: tuple[str, ...] = ()
    receive_ephemeral: bool = False
    msc3202: bool = False  # device masquerading; to-device and device lists pushed
    msc4190: bool = False  # device management by the AS
    source: str = ""  # the registration file, for messages

    # -- namespaces -------------------------------------------------------------

    def is_interested_in_user(self, user_id: str) -> bool:
        """The AS's sender, or a user in its user namespace."""
        return user_id == self.sender or _any_match(self.users, user_id)

    def owns_user(self, user_id: str) -> bool:
        """Whether the AS may act as ``user_id`` (its sender or a namespace user)."""
        return self.is_interested_in_user(user_id)

    def is_exclusive_user(self, user_id: str) -> bool:
        return user_id == self.sender or _any_match(self.users, user_id, exclusive=True)

    def is_interested_in_alias(self, alias: str) -> bool:
        return _any_match(self.aliases, alias)

    def is_exclusive_alias(self, alias: str) -> bool:
        return _any_match(self.aliases, alias, exclusive=True)

    def is_interested_in_room_id(self, room_id: str) -> bool:
        return _any_match(self.rooms, room_id)

    def is_exclusive_room(self, room_id: str) -> bool:
        return _any_match(self.rooms, room_id, exclusive=True)


def _any_match(namespaces: Iterable[Namespace], text: str, *, exclusive: bool = False) -> bool:
    return any(ns.matches(text) for ns in namespaces if ns.exclusive or not exclusive)


# --- parsing -------------------------------------------------------------------


def _to_regex(value: object) -> re.Pattern[str]:
    text = to_str(value)
    try:
        return re.compile(text)
    except re.error as error:
        raise Invalid(f"not a valid regular expression: {error}") from None


def _namespaces(reader: Reader, key: str) -> tuple[Namespace, ...]:
    children = reader.children(key)
    if children is None:
        return ()
    entries: list[Namespace] = []
    for child in children:
        regex = child.require("regex", _to_regex)
        exclusive = child.require("exclusive", to_bool)
        group_id = child.optional("group_id", to_str)
        if regex is not None and exclusive is not None:
            entries.append(Namespace(regex, exclusive, group_id))
    return tuple(entries)


def _to_url(value: object) -> str:
    text = to_nonempty_str(value)
    if not re.match(r"^https?://[^/\s]+", text):
        raise Invalid(f"expected an http:// or https:// URL, got {describe(value)}")
    return text.rstrip("/")


def _to_localpart(value: object) -> str:
    text = to_nonempty_str(value)
    if re.search(r"[:@\s]", text):
        raise Invalid(f"{describe(value)} is not a user localpart (no ':', '@' or spaces)")
    return text


def parse_registration(raw: object, server_name: str, source: str = "") -> ApplicationService:
    """One registration from its YAML mapping; every problem in one ``ConfigError``
    whose messages start with ``source`` (the file)."""
    errors: list[str] = []
    reader = Reader(raw, "", errors)
    as_id = reader.require("id", to_nonempty_str)
    url: str | None = None
    if "url" not in reader.keys():
        reader.error("url", "this option is required (null if the service takes no pushes)")
    else:
        url = reader.optional("url", _to_url)
    as_token = reader.require("as_token", to_nonempty_str)
    hs_token = reader.require("hs_token", to_nonempty_str)
    localpart = reader.require("sender_localpart", _to_localpart)
    namespaces = reader.child("namespaces")
    users = _namespaces(namespaces, "users")
    aliases = _namespaces(namespaces, "aliases")
    rooms = _namespaces(namespaces, "rooms")
    rate_limited = reader.get("rate_limited", to_bool, True)
    protocols: tuple[str, ...] = reader.get("protocols", list_of(to_nonempty_str), ())
    ephemeral = False
    for key in _EPHEMERAL_KEYS:
        ephemeral = reader.get(key, to_bool, False) or ephemeral
    msc3202 = reader.get(MSC3202_KEY, to_bool, False)
    msc4190 = reader.get(MSC4190_KEY, to_bool, False)
    # Other keys are ignored, as Synapse ignores them: bridges write keys of their own.
    if errors or as_id is None or as_token is None or hs_token is None or localpart is None:
        prefix = f"{source}: " if source else ""
        raise ConfigError([prefix + error for error in errors] or [prefix + "invalid"])
    return ApplicationService(
        id=as_id,
        url=url,
        as_token=as_token,
        hs_token=hs_token,
        sender=f"@{localpart}:{server_name}",
        users=users,
        aliases=aliases,
        rooms=rooms,
        rate_limited=rate_limited,
        protocols=protocols,
        receive_ephemeral=ephemeral,
        msc3202=msc3202,
        msc4190=msc4190,
        source=source,
    )


def check_unique(services: Sequence[ApplicationService]) -> None:
    """IDs, ``as_token`` and ``hs_token`` and senders are unique across registrations."""
    errors: list[str] = []
    for attribute, label in (
        ("id", "id"),
        ("as_token", "as_token"),
        ("hs_token", "hs_token"),
        ("sender", "sender_localpart"),
    ):
        seen: dict[str, str] = {}
        for service in services:
            value = getattr(service, attribute)
            if value in seen:
                errors.append(f"{service.source}: {label}: the same as in {seen[value]}")
            else:
                seen[value] = service.source
    if errors:
        raise ConfigError(errors)


def load_registrations(
    paths: Sequence[Path | str], server_name: str
) -> tuple[ApplicationService, ...]:
    """Read every registration file (``app_service_config_files``)."""
    services: list[ApplicationService] = []
    errors: list[str] = []
    for index, path in enumerate(paths):
        source = f"app_service_config_files[{index}] ({path})"
        try:
            with open(path, encoding="utf-8") as stream:
                raw = yaml.safe_load(stream)
        except OSError as error:
            errors.append(f"{source}: cannot read: {error.strerror or error}")
            continue
        except yaml.YAMLError as error:
            errors.append(f"{source}: not valid YAML: {error}")
            continue
        try:
            services.append(parse_registration(raw, server_name, source))
        except ConfigError as error:
            errors.extend(error.errors)
    if errors:
        raise ConfigError(errors)
    check_unique(services)
    return tuple(services)
