"""Pure checks of third-party ID input: client secrets, email addresses, phone
numbers, the ``allowed_local_3pids`` patterns and ``next_link``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from homeserver.config.email import ThreepidPattern
from homeserver.errors import InvalidParam, MatrixError

MEDIA = ("email", "msisdn")
MAX_EMAIL_ADDRESS_LENGTH = 500
_CLIENT_SECRET = re.compile(r"^[0-9a-zA-Z.=_\-]{1,255}$")


def check_client_secret(client_secret: object) -> str:
    """400 M_INVALID_PARAM unless the spec's client secret alphabet and length."""
    if not isinstance(client_secret, str) or not _CLIENT_SECRET.match(client_secret):
        raise InvalidParam("Invalid client_secret parameter")
    return client_secret


def canonical_email(address: str) -> str:
    """An email address as stored (Synapse's ``validate_email``): trimmed, the local
    part case-folded and the domain lower-cased; 400 if it is no address."""
    parts = address.strip().split("@")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise MatrixError(400, "M_INVALID_PARAM", "Unable to parse email address")
    canonical = parts[0].casefold() + "@" + parts[1].lower()
    if len(canonical) > MAX_EMAIL_ADDRESS_LENGTH:
        raise MatrixError(400, "M_INVALID_PARAM", "Unable to parse email address")
    return canonical


def canonical_address(medium: str, address: str) -> str:
    return canonical_email(address) if medium == "email" else address


def phone_number_to_msisdn(country: str, phone_number: str) -> str:
    """The MSISDN (international digits, no ``+``) of a number written as in
    ``country`` (two-letter code), as Synapse's ``phone_number_to_msisdn``."""
    import phonenumbers  # half a MB of metadata: loaded by the first phone number

    try:
        number = phonenumbers.parse(phone_number, country)
    except phonenumbers.NumberParseException:
        raise MatrixError(400, "M_INVALID_PARAM", "Unable to parse phone number") from None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def allowed(patterns: Sequence[ThreepidPattern] | None, medium: str, address: str) -> bool:
    """Whether ``allowed_local_3pids`` lets ``address`` be used (always, when unset)."""
    if patterns is None:
        return True
    return any(p.medium == medium and p.pattern.match(address) for p in patterns)


def check_next_link(next_link: str) -> None:
    """``next_link`` must be http(s): never a local file."""
    scheme = urlsplit(next_link).scheme
    if scheme not in ("http", "https"):
        raise MatrixError(
            400,
            "M_INVALID_PARAM",
            "'next_link' domain not included in whitelist, or not http(s)",
        )
