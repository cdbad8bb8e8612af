"""OpenID Connect identity providers (Synapse's ``oidc_providers``).

Modules: ``provider`` (the authorization code flow of one provider), ``id_tokens``
(checking ID tokens), ``session`` (the signed ``oidc_session`` cookie), ``mapping``
(claims to a Matrix user), ``http`` (the outbound requests).
"""

from __future__ import annotations

from homeserver.sso.oidc.http import OidcHttpClient
from homeserver.sso.oidc.provider import CALLBACK_PATH, OidcError, OidcProvider, OidcUser
from homeserver.sso.oidc.session import (
    SESSION_COOKIE,
    SESSION_COOKIE_NO_SAMESITE,
    SESSION_COOKIE_PATH,
    SESSION_LIFETIME_MS,
    InvalidSession,
    OidcSession,
    SessionSigner,
)

__all__ = [
    "CALLBACK_PATH",
    "SESSION_COOKIE",
    "SESSION_COOKIE_NO_SAMESITE",
    "SESSION_COOKIE_PATH",
    "SESSION_LIFETIME_MS",
    "InvalidSession",
    "OidcError",
    "OidcHttpClient",
    "OidcProvider",
    "OidcSession",
    "OidcUser",
    "SessionSigner",
]
