"""Reading one YAML mapping into typed values, recording errors by dotted key path.

A `Reader` wraps the mapping found at one key path (``""`` for the top level,
``"listeners[0]"``, ``"database.args"`` ...). Each accessor takes a key, a
*converter* (a function from the raw YAML value to the typed value that raises
`Invalid` with a message) and a default. A bad value is recorded as
``"<key path>: <message>"`` and the default is returned, so that one pass reports
every error in the file. `Reader.finish` reports the keys nobody asked for: a Synapse
option this server does not implement is a warning, any other key an error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlsplit

from homeserver.config.synapse_options import synapse_names

T = TypeVar("T")

Converter = Callable[[object], T]


class ConfigError(Exception):
    """The configuration cannot be used. str() is one line per problem, joined by "; "."""

    def __init__(self, errors: str | Sequence[str]) -> None:
        self.errors: tuple[str, ...] = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("; ".join(self.errors))


class Invalid(Exception):
    """Raised by a converter. `subpath` (like ``"[2]"`` or ``".width"``) locates the
    problem inside the value being converted."""

    def __init__(self, message: str, subpath: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.subpath = subpath


def describe(value: object) -> str:
    """How a YAML value is quoted in an error message: strings in double quotes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Reader:
    """The mapping at one key path of the config file."""

    def __init__(
        self, raw: object, path: str, errors: list[str], warnings: list[str] | None = None
    ) -> None:
        self.path = path
        self.errors = errors
        self.warnings: list[str] = [] if warnings is None else warnings
        self._seen: set[str] = set()
        self._raw: dict[str, object] = {}
        if raw is None:
            return
        if not isinstance(raw, dict):
            where = path or "the config file"
            self.errors.append(f"{where}: expected a mapping, got {describe(raw)}")
            return
        self._raw = {str(key): value for key, value in raw.items()}

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{self.key_path(key)}: {message}")

    def keys(self) -> list[str]:
        return list(self._raw)

    def has(self, key: str) -> bool:
        return self._raw.get(key) is not None

    def raw(self, key: str) -> object:
        """The unconverted value (None if absent); marks the key as known."""
        self._seen.add(key)
        return self._raw.get(key)

    def get(self, key: str, convert: Converter[T], default: T) -> T:
        """The converted value of `key`; `default` if absent, null or invalid."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return convert(value)
        except Invalid as invalid:
            self.errors.append(f"{self.key_path(key)}{invalid.subpath}: {invalid.message}")
            return default

    def optional(self, key: str, convert: Converter[T]) -> T | None:
        return self.get(key, convert, None)

    def require(self, key: str, convert: Converter[T]) -> T | None:
        """Like `optional`, but an absent key is an error."""
        if self.raw(key) is None:
            self.error(key, "this option is required")
            return None
        return self.optional(key, convert)

    def child(self, key: str) -> Reader:
        """The nested mapping at `key` (empty if absent)."""
        return Reader(self.raw(key), self.key_path(key), self.errors, self.warnings)

    def children(self, key: str) -> list[Reader] | None:
        """The list of mappings at `key`, or None if absent."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(key, f"expected a list, got {describe(value)}")
            return None
        return [
            Reader(item, f"{self.key_path(key)}[{index}]", self.errors, self.warnings)
            for index, item in enumerate(value)
        ]

    def finish(self) -> None:
        """Report every key that no accessor asked for: a Synapse option of this
        section as a warning (accepted, not implemented), anything else as an error
        naming the closest option name."""
        synapse = synapse_names(self.path)
        for key in self._raw:
            if key in self._seen:
                continue
            if key in synapse:
                self.warnings.append(
                    f"{self.key_path(key)}: a Synapse option this server does not "
                    "implement yet; ignored"
                )
                continue
            import difflib  # (only for a config with a mistake)

            close = difflib.get_close_matches(key, sorted(self._seen | synapse), n=1, cutoff=0.7)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            self.error(key, f"unknown option{hint}")


# --- converters -------------------------------------------------------------------


def to_str(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {describe(value)}")
    return value


def to_nonempty_str(value: object) -> str:
    text = to_str(value)
    if not text.strip():
        raise Invalid("must not be empty")
    return text


def to_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {describe(value)}")
    return value


def to_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer, got {describe(value)}")
    return value


def int_between(low: int, high: int) -> Converter[int]:
    def convert(value: object) -> int:
        number = to_int(value)
        if not low <= number <= high:
            raise Invalid(f"expected an integer from {low} to {high}, got {number}")
        return number

    return convert


def to_port(value: object) -> int:
    return int_between(1, 65535)(value)


def to_non_negative_int(value: object) -> int:
    number = to_int(value)
    if number < 0:
        raise Invalid(f"expected a non-negative integer, got {number}")
    return number


def to_positive_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number, got {describe(value)}")
    if value <= 0:
        raise Invalid(f"expected a positive number, got {value!r}")
    return float(value)


def one_of(*choices: str, case_insensitive: bool = False) -> Converter[str]:
    listed = ", ".join(json.dumps(choice) for choice in choices)

    def convert(value: object) -> str:
        text = to_str(value)
        for choice in choices:
            if text == choice or (case_insensitive and text.lower() == choice.lower()):
                return choice
        raise Invalid(f"expected one of {listed}, got {describe(value)}")

    return convert


def list_of(convert: Converter[T]) -> Converter[tuple[T, ...]]:
    """A YAML list whose items all convert; errors name the item index."""

    def convert_list(value: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise Invalid(f"expected a list, got {describe(value)}")
        items: list[T] = []
        for index, item in enumerate(value):
            try:
                items.append(convert(item))
            except Invalid as invalid:
                raise Invalid(invalid.message, f"[{index}]{invalid.subpath}") from None
        return tuple(items)

    return convert_list


def to_path(value: object) -> Path:
    """A filesystem path, kept as written (relative paths are relative to the CWD)."""
    return Path(to_nonempty_str(value))


_SIZE_UNITS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)\s*", re.IGNORECASE)


def to_size(value: object) -> int:
    """A size in bytes: an integer, or a string like "100K", "50M", "1G" (powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise Invalid(f"expected a non-negative size, got {value}")
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(
            f'expected a size in bytes or a string like "100K", "50M" or "1G", '
            f"got {describe(value)}"
        )
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


_DURATION_UNITS_MS: Final = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "y": 365 * 86_400_000,
}
_DURATION = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d|w|y)\s*")


def to_duration_ms(value: object) -> int:
    """A duration in milliseconds: an integer (ms), or a string like "30s", "5m", "1d"."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise Invalid(f"expected a non-negative duration, got {value}")
        return value
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(
            'expected a duration in milliseconds or a string like "30s", "5m", "1h", '
            f'"1d", "1w" or "1y", got {describe(value)}'
        )
    return int(match.group(1)) * _DURATION_UNITS_MS[match.group(2)]


def to_positive_duration_ms(value: object) -> int:
    """A duration (as ``to_duration_ms``) longer than zero."""
    duration = to_duration_ms(value)
    if duration <= 0:
        raise Invalid("expected a positive duration")
    return duration


def to_http_url(value: object) -> str:
    """An absolute http(s) URL; a trailing slash is added (as Synapse does)."""
    text = to_nonempty_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"expected an http:// or https:// URL, got {describe(value)}")
    return text if text.endswith("/") else text + "/"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def to_cidr(value: object) -> IPNetwork:
    """An IP range in CIDR notation ("10.0.0.0/8", "fe80::/10"); a bare address is a /32 or /128."""
    text = to_str(value)
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise Invalid(f"expected an IP range in CIDR notation, got {describe(value)}") from None


def to_ip_address(value: object) -> str:
    text = to_str(value)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise Invalid(f"expected an IP address, got {describe(value)}") from None
    return text


_DNS_NAME = re.compile(r"[A-Za-z0-9.\-]{1,255}")
_PORT = re.compile(r"[0-9]{1,5}")


def is_server_name(text: str) -> bool:
    """Whether `text` is a server name by the grammar of the spec's appendices:
    ``hostname [":" port]`` with hostname an IPv4 address, ``[IPv6]`` or a DNS name."""
    host, port = text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return False
        host, rest = text[: close + 1], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    else:
        if ":" in text:
            host, port = text.split(":", 1)
        if not _DNS_NAME.fullmatch(host):
            return False
    if port is not None:
        if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
            return False
    return True


def to_server_name(value: object) -> str:
    text = to_str(value)
    if not is_server_name(text):
        raise Invalid(
            "expected a server name (a hostname, IPv4 address or [IPv6 address], "
            f"optionally followed by :port), got {describe(value)}"
        )
    return text
