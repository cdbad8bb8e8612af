"""The browser's OIDC session: what the callback must match, kept in a cookie.

When the browser is sent to the provider, the state, nonce and PKCE verifier of that
attempt (and where the login goes back to, or which user-interactive auth session it
is for) are put in the ``oidc_session`` cookie, signed with HMAC-SHA256 under a
server secret and valid for an hour (as Synapse's). The callback accepts only the
``state`` the cookie holds, so a code cannot be injected into another browser's
login (OAuth 2.0 "CSRF"). The cookie is HttpOnly and scoped to the callback path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Final

SESSION_COOKIE: Final = "oidc_session"
# a second copy without SameSite, for browsers that read SameSite=None as Strict (Synapse)
SESSION_COOKIE_NO_SAMESITE: Final = "oidc_session_no_samesite"
SESSION_COOKIE_PATH: Final = "/_synapse/client/oidc"
SESSION_LIFETIME_MS: Final = 60 * 60 * 1000


class InvalidSession(Exception):
    """The cookie is not one this server made, or it has expired: ``error`` is the
    code shown (Synapse's ``invalid_session`` / ``mismatching_session``)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class OidcSession:
    idp_id: str
    state: str
    nonce: str
    code_verifier: str
    client_redirect_url: str
    ui_auth_session_id: str
    expires_ms: int


def new_secret_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Makes and checks session cookies with a key derived from ``secret``."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"homeserver oidc_session cookie\x00" + secret).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, session: OidcSession) -> str:
        payload = _b64(json.dumps(asdict(session), separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, cookie: str, state: str, now_ms: int) -> OidcSession:
        """The session of ``cookie`` if it is ours, unexpired and for ``state``."""
        payload, dot, mac = cookie.partition(".")
        if not dot or not payload.isascii() or not mac.isascii():
            raise InvalidSession("invalid_session", "The session cookie is malformed")
        if not hmac.compare_digest(self._mac(payload), mac):
            raise InvalidSession("mismatching_session", "The session cookie is not valid")
        try:
            fields = json.loads(_unb64(payload))
            session = OidcSession(**fields)
        except (ValueError, TypeError):
            raise InvalidSession("invalid_session", "The session cookie is malformed") from None
        if session.expires_ms <= now_ms:
            raise InvalidSession("invalid_session", "The session has expired; sign in again")
        if not hmac.compare_digest(session.state.encode(), state.encode()):
            raise InvalidSession("mismatching_session", "The state does not match the session")
        return session


def s256_challenge(verifier: str) -> str:
    """RFC 7636's S256 code challenge of ``verifier``."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())
