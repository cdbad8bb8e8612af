"""How outbound HTTPS checks certificates, from the configuration.

Federation trusts the system's certificate authorities, or only those of
``federation_custom_ca_list`` when it is set (as in Synapse, the list replaces the
system's), and checks nothing when ``federation_verify_certificates`` is false. Every
other outbound request (push gateways, URL previews) checks against the system's
authorities. ``use_insecure_ssl_client_just_for_testing_do_not_use`` turns every check
off, for test setups whose servers have certificates of a throwaway authority.
"""

from __future__ import annotations

import ssl
from functools import cache

from homeserver.config import ConfigError, HomeserverConfig


@cache
def system_tls() -> ssl.SSLContext:
    """One context that checks certificates against the system's authorities, shared
    by every outbound client: each context parses the whole CA bundle and keeps it in
    memory (a server built five of them, ~35 ms each). A context is safe to share
    between connections and event loops; nothing here changes it after it is made."""
    return ssl.create_default_context()


def federation_tls(config: HomeserverConfig) -> ssl.SSLContext | bool:
    """The ``ssl`` argument of aiohttp's connector for federation requests."""
    if (
        config.use_insecure_ssl_client_just_for_testing_do_not_use
        or not config.federation_verify_certificates
    ):
        return False
    if not config.federation_custom_ca_list:
        return system_tls()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for path in config.federation_custom_ca_list:
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"federation_custom_ca_list: cannot read {path}: {error}") from None
    return context


def client_tls(config: HomeserverConfig) -> ssl.SSLContext | bool:
    """The ``ssl`` argument for every other outbound HTTPS request."""
    if config.use_insecure_ssl_client_just_for_testing_do_not_use:
        return False
    return system_tls()
