"""Single sign-on (client-server API: "SSO client login/authentication").

Modules: ``cas`` (the CAS identity provider: redirects, ticket validation, its XML),
``oidc`` (OpenID Connect identity providers), ``service`` (mapping provider users to accounts, login and user-interactive auth
outcomes), ``login_tokens`` (m.login.token), ``localparts`` (user names as
localparts), ``redirect_urls`` (the client's redirectUrl).
"""

from __future__ import annotations

import hashlib

from signedjson.types import SigningKey

from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.http.outbound_tls import client_tls
from homeserver.media.preview import AddressFilter
from homeserver.sso.cas import CasHttpClient, CasProvider
from homeserver.sso.login_tokens import LoginTokenService
from homeserver.sso.oidc import OidcHttpClient, OidcProvider, SessionSigner
from homeserver.sso.service import (
    PICK_IDP_PATH,
    SSO_STAGE,
    IdentityProvider,
    LoginGranted,
    SsoError,
    SsoRedirect,
    SsoService,
    UiaChecked,
    UiaRedirect,
)

__all__ = [
    "PICK_IDP_PATH",
    "SSO_STAGE",
    "CasHttpClient",
    "CasProvider",
    "IdentityProvider",
    "LoginGranted",
    "LoginTokenService",
    "SsoError",
    "SsoRedirect",
    "SsoService",
    "UiaChecked",
    "UiaRedirect",
    "cas_provider_from_config",
    "oidc_providers_from_config",
    "session_signer_for",
]


def cas_provider_from_config(config: HomeserverConfig) -> CasProvider | None:
    """The CAS provider of ``cas_config`` (None when CAS is off); its requests go out
    under the outbound TLS setting and the address rules push gateways obey."""
    if not config.cas_config.enabled:
        return None
    transport = CasHttpClient(
        AddressFilter(config.ip_range_blacklist, config.ip_range_whitelist),
        tls=client_tls(config),
    )
    return CasProvider(config.cas_config, config.public_baseurl_effective, transport)


def oidc_providers_from_config(config: HomeserverConfig, clock: Clock) -> list[OidcProvider]:
    """The providers of ``oidc_providers`` (and the legacy ``oidc_config``), each
    reaching its provider under the outbound TLS setting and address rules."""
    providers = []
    for provider_config in config.oidc_providers:
        transport = OidcHttpClient(
            AddressFilter(config.ip_range_blacklist, config.ip_range_whitelist),
            tls=client_tls(config),
        )
        providers.append(
            OidcProvider(provider_config, config.public_baseurl_effective, transport, clock)
        )
    return providers


def session_signer_for(signing_key: SigningKey) -> SessionSigner:
    """The signer of OIDC session cookies, keyed by a secret derived from the
    server's signing key (never the key itself)."""
    seed = signing_key.encode()
    return SessionSigner(hashlib.sha256(b"oidc session secret\x00" + bytes(seed)).digest())
