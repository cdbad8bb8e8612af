"""TURN credentials (client-server API, "Voice over IP": ``GET /voip/turnServer``).

With ``turn_shared_secret`` the credentials are the time-limited ones of the TURN
REST API that coturn's ``use-auth-secret`` checks: the username is
``<expiry in seconds>:<user ID>`` and the password the base64 HMAC-SHA1 of the
username under the secret. Otherwise ``turn_username`` / ``turn_password`` are
handed out as they are. As in Synapse, a server without ``turn_uris`` answers with
an empty object, and guests are refused unless ``turn_allow_guests``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from homeserver.clock import Clock
from homeserver.errors import Forbidden


def shared_secret_credentials(
    secret: str, user_id: str, now_ms: int, lifetime_ms: int
) -> tuple[str, str]:
    """(username, password) valid until ``now + lifetime`` for a TURN server that
    shares ``secret``."""
    expiry = (now_ms + lifetime_ms) // 1000
    username = f"{expiry}:{user_id}"
    mac = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1)
    return username, base64.b64encode(mac.digest()).decode("ascii")


@dataclass(frozen=True)
class TurnSettings:
    uris: tuple[str, ...]
    shared_secret: str | None
    username: str | None
    password: str | None
    lifetime_ms: int
    allow_guests: bool


class TurnService:
    def __init__(self, settings: TurnSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    def credentials(self, user_id: str, *, is_guest: bool) -> dict[str, Any]:
        """The body of ``GET /voip/turnServer`` for this user."""
        settings = self._settings
        if is_guest and not settings.allow_guests:
            raise Forbidden("Guest access not allowed", errcode="M_GUEST_ACCESS_FORBIDDEN")
        if not settings.uris:
            return {}
        if settings.shared_secret:
            username, password = shared_secret_credentials(
                settings.shared_secret, user_id, self._clock.time_ms(), settings.lifetime_ms
            )
        elif settings.username and settings.password:
            username, password = settings.username, settings.password
        else:
            return {}
        return {
            "username": username,
            "password": password,
            "ttl": settings.lifetime_ms // 1000,
            "uris": list(settings.uris),
        }
