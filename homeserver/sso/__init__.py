"""Single sign-on (client-server API: "SSO client login/authentication").

Modules: ``cas`` (the CAS identity provider: redirects, ticket validation, its XML),
``service`` (mapping provider users to accounts, login and user-interactive auth
outcomes), ``login_tokens`` (m.login.token), ``localparts`` (user names as
localparts), ``redirect_urls`` (the client's redirectUrl).
"""

from __future__ import annotations

from homeserver.config import HomeserverConfig
from homeserver.http.outbound_tls import client_tls
from homeserver.media.preview import AddressFilter
from homeserver.sso.cas import CasHttpClient, CasProvider
from homeserver.sso.login_tokens import LoginTokenService
from homeserver.sso.service import (
    SSO_STAGE,
    IdentityProvider,
    LoginGranted,
    SsoError,
    SsoService,
    UiaChecked,
    UiaRedirect,
)

__all__ = [
    "SSO_STAGE",
    "CasHttpClient",
    "CasProvider",
    "IdentityProvider",
    "LoginGranted",
    "LoginTokenService",
    "SsoError",
    "SsoService",
    "UiaChecked",
    "UiaRedirect",
    "cas_provider_from_config",
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
