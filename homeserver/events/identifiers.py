"""Matrix identifiers by the appendix grammar (spec: appendices "Identifier Grammar").

Each identifier is a small frozen class with a ``parse`` classmethod raising
:class:`InvalidIdentifier`. User IDs have a strict parse (IDs this server creates:
``[a-z0-9._=\\-/+]`` localparts) and a lenient one (historical IDs received over
federation: any non-surrogate code points except ``:`` and NUL).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import InvalidIdentifier
from .room_versions import EventIdFormat, RoomVersion

MAX_ID_BYTES = 255

_PORT_RE = re.compile(r"[0-9]{1,5}", re.ASCII)
_DNS_NAME_RE = re.compile(r"[A-Za-z0-9.\-]{1,255}", re.ASCII)
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", re.ASCII)
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]{2,45}", re.ASCII)
_STRICT_LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+", re.ASCII)
_HISTORICAL_LOCALPART_RE = re.compile(r"[^:\x00\ud800-\udfff]*")
_OPAQUE_RE = re.compile(r"[^:\x00\ud800-\udfff]+")
_B64_HASH_RE = re.compile(r"[A-Za-z0-9+/]{43}", re.ASCII)
_URLSAFE_B64_HASH_RE = re.compile(r"[A-Za-z0-9_\-]{43}", re.ASCII)


def _check_length(value: str, what: str) -> None:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise InvalidIdentifier(f"{what} longer than {MAX_ID_BYTES} bytes")


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """Split and validate a server name into (hostname, port).

    Spec: appendices "Server Name": ``hostname [":" port]`` where hostname is an IPv4
    dotted quad (each number 0-255), a bracketed IPv6 literal (RFC 3513) or a DNS name.
    """
    if not server_name:
        raise InvalidIdentifier("empty server name")
    port: int | None = None
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            raise InvalidIdentifier(f"unterminated IPv6 literal in {server_name!r}")
        host = server_name[: end + 1]
        rest = server_name[end + 1 :]
        literal = host[1:-1]
        if not _IPV6_CHARS_RE.fullmatch(literal):
            raise InvalidIdentifier(f"bad IPv6 literal in {server_name!r}")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError as exc:
            raise InvalidIdentifier(f"bad IPv6 literal in {server_name!r}") from exc
        if rest:
            if not rest.startswith(":"):
                raise InvalidIdentifier(f"junk after IPv6 literal in {server_name!r}")
            port = _parse_port(rest[1:], server_name)
        return host, port
    host, sep, port_text = server_name.partition(":")
    if sep:
        port = _parse_port(port_text, server_name)
    if _IPV4_RE.fullmatch(host):
        if any(int(part) > 255 for part in host.split(".")):
            raise InvalidIdentifier(f"IPv4 literal out of range in {server_name!r}")
    elif not _DNS_NAME_RE.fullmatch(host):
        raise InvalidIdentifier(f"bad hostname in {server_name!r}")
    return host, port


def _parse_port(text: str, server_name: str) -> int:
    if not _PORT_RE.fullmatch(text):
        raise InvalidIdentifier(f"bad port in {server_name!r}")
    return int(text)


def is_valid_server_name(server_name: str) -> bool:
    """Whether ``server_name`` matches the appendix server name grammar."""
    try:
        split_server_name(server_name)
    except InvalidIdentifier:
        return False
    return True


def _split_sigil_id(value: str, sigil: str, what: str) -> tuple[str, str]:
    if not isinstance(value, str) or not value.startswith(sigil):
        raise InvalidIdentifier(f"{what} must start with {sigil!r}")
    _check_length(value, what)
    localpart, sep, domain = value[1:].partition(":")
    if not sep:
        raise InvalidIdentifier(f"{what} {value!r} has no server name")
    split_server_name(domain)
    return localpart, domain


@dataclass(frozen=True, slots=True)
class UserID:
    """``@localpart:domain`` (spec: appendices "User Identifiers")."""

    localpart: str
    domain: str

    @classmethod
    def parse(cls, value: str, *, strict: bool = False) -> UserID:
        """Parse a user ID.

        ``strict=True`` applies the current grammar (for IDs we create);
        otherwise the historical grammar accepted over federation is used.
        """
        localpart, domain = _split_sigil_id(value, "@", "user ID")
        pattern = _STRICT_LOCALPART_RE if strict else _HISTORICAL_LOCALPART_RE
        if not pattern.fullmatch(localpart):
            raise InvalidIdentifier(f"bad user ID localpart in {value!r}")
        return cls(localpart, domain)

    @property
    def is_compliant(self) -> bool:
        """Whether the localpart matches the current (non-historical) grammar."""
        return _STRICT_LOCALPART_RE.fullmatch(self.localpart) is not None

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.domain}"


@dataclass(frozen=True, slots=True)
class RoomID:
    """``!opaque:domain`` or, from room version 12, ``!<url-safe hash>``.

    Spec: appendices "Room IDs". ``domain`` is None for the hash form.
    """

    opaque: str
    domain: str | None

    @classmethod
    def parse(cls, value: str, room_version: RoomVersion | None = None) -> RoomID:
        """Parse a room ID; with ``room_version``, require that version's form."""
        if not isinstance(value, str) or not value.startswith("!"):
            raise InvalidIdentifier("room ID must start with '!'")
        _check_length(value, "room ID")
        if ":" not in value:
            if room_version is not None and not room_version.room_id_from_create_event:
                raise InvalidIdentifier(f"room ID {value!r} has no server name")
            if not _URLSAFE_B64_HASH_RE.fullmatch(value[1:]):
                raise InvalidIdentifier(f"bad hash room ID {value!r}")
            return cls(value[1:], None)
        if room_version is not None and room_version.room_id_from_create_event:
            raise InvalidIdentifier(f"room ID {value!r} must be a create event hash")
        opaque, domain = _split_sigil_id(value, "!", "room ID")
        if not _OPAQUE_RE.fullmatch(opaque):
            raise InvalidIdentifier(f"bad room ID localpart in {value!r}")
        return cls(opaque, domain)

    def __str__(self) -> str:
        return f"!{self.opaque}" if self.domain is None else f"!{self.opaque}:{self.domain}"


@dataclass(frozen=True, slots=True)
class EventID:
    """``$opaque:domain`` (room versions 1-2) or ``$<reference hash>`` (3+).

    Spec: appendices "Event IDs" and each room version's "Event IDs" section.
    """

    opaque: str
    domain: str | None

    @classmethod
    def parse(cls, value: str, room_version: RoomVersion | None = None) -> EventID:
        """Parse an event ID; with ``room_version``, require that version's form."""
        if not isinstance(value, str) or not value.startswith("$"):
            raise InvalidIdentifier("event ID must start with '$'")
        _check_length(value, "event ID")
        fmt = room_version.event_id_format if room_version else None
        if fmt is EventIdFormat.V1 or (fmt is None and ":" in value):
            opaque, domain = _split_sigil_id(value, "$", "event ID")
            if not _OPAQUE_RE.fullmatch(opaque):
                raise InvalidIdentifier(f"bad event ID localpart in {value!r}")
            return cls(opaque, domain)
        body = value[1:]
        if fmt is EventIdFormat.V3:
            ok = _B64_HASH_RE.fullmatch(body) is not None
        elif fmt is EventIdFormat.V4:
            ok = _URLSAFE_B64_HASH_RE.fullmatch(body) is not None
        else:
            ok = bool(_B64_HASH_RE.fullmatch(body) or _URLSAFE_B64_HASH_RE.fullmatch(body))
        if not ok:
            raise InvalidIdentifier(f"bad hash event ID {value!r}")
        return cls(body, None)

    def __str__(self) -> str:
        return f"${self.opaque}" if self.domain is None else f"${self.opaque}:{self.domain}"


@dataclass(frozen=True, slots=True)
class RoomAlias:
    """``#localpart:domain`` (spec: appendices "Room Aliases")."""

    localpart: str
    domain: str

    @classmethod
    def parse(cls, value: str) -> RoomAlias:
        """Parse a room alias."""
        localpart, domain = _split_sigil_id(value, "#", "room alias")
        if not _OPAQUE_RE.fullmatch(localpart):
            raise InvalidIdentifier(f"bad room alias localpart in {value!r}")
        return cls(localpart, domain)

    def __str__(self) -> str:
        return f"#{self.localpart}:{self.domain}"


def is_valid_user_id(value: object, *, strict: bool = False) -> bool:
    """Whether ``value`` is a user ID (historical grammar unless ``strict``)."""
    if not isinstance(value, str):
        return False
    try:
        UserID.parse(value, strict=strict)
    except InvalidIdentifier:
        return False
    return True


def server_name_of(identifier: str) -> str:
    """The server name (domain) of a ``&localpart:domain`` identifier.

    Raises :class:`InvalidIdentifier` if there is no ``:``. Does not validate the
    grammar: this is the cheap split used by the auth rules on already-validated IDs.
    """
    _, sep, domain = identifier.partition(":")
    if not sep:
        raise InvalidIdentifier(f"{identifier!r} has no server name")
    return domain
