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

from homeserver.config import ConfigError, HomeserverConfig

# ``True`` as aiohttp's ``ssl`` argument: its default context, which checks
# certificates against the system's authorities. aiohttp builds that context once, when
# it is imported; every context that loads the system's authorities parses the whole
# CA bundle and keeps it in memory (2.4 MB resident, ~35 ms), so one more of our own
# would be a second copy of the same store.
SYSTEM_AUTHORITIES = True


def federation_tls(config: HomeserverConfig) -> ssl.SSLContext | bool:
    """The ``ssl`` argument of aiohttp's connector for federation requests: a context
    of the custom authorities, ``True`` (the system's) or ``False`` (no check)."""
    if (
        config.use_insecure_ssl_client_just_for_testing_do_not_use
        or not config.federation_verify_certificates
    ):
        return False
    if not config.federation_custom_ca_list:
        return SYSTEM_AUTHORITIES
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
    return SYSTEM_AUTHORITIES
