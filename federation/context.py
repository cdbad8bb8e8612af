"""Everything federation handlers and later federation services need, built once by
the composition root (``homeserver/server.py``) from the config."""

from __future__ import annotations

from dataclasses import dataclass

from federation.auth import FederationAuthenticator
from federation.client import FederationClient, FederationClientSettings
from federation.discovery import DnsResolver
from federation.key_server import KeyServer
from federation.keyring import KeyRing
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.events.signing import SigningKey
from storage.stores import Stores


@dataclass
class FederationContext:
    server_name: str
    config: HomeserverConfig
    clock: Clock
    signing_key: SigningKey
    stores: Stores
    client: FederationClient
    keyring: KeyRing
    key_server: KeyServer
    authenticator: FederationAuthenticator

    @classmethod
    def build(
        cls,
        config: HomeserverConfig,
        clock: Clock,
        signing_key: SigningKey,
        stores: Stores,
        *,
        dns: DnsResolver | None = None,
    ) -> FederationContext:
        settings = FederationClientSettings.from_config(config)
        client = FederationClient(config.server_name, signing_key, settings, clock, dns=dns)
        keyring = KeyRing(
            config.server_name,
            signing_key,
            config.old_signing_keys,
            stores.server_keys,
            client,
            clock,
            trusted_key_servers=config.trusted_key_servers,
        )
        key_server = KeyServer(
            config.server_name,
            signing_key,
            config.old_signing_keys,
            config.key_refresh_interval,
            keyring,
            stores.server_keys,
            clock,
        )
        authenticator = FederationAuthenticator(
            config.server_name, keyring, clock, domain_whitelist=settings.domain_whitelist
        )
        return cls(
            config.server_name,
            config,
            clock,
            signing_key,
            stores,
            client,
            keyring,
            key_server,
            authenticator,
        )

    async def close(self) -> None:
        await self.client.close()
