"""The registered application services of this server, and the questions the rest of
the server asks about them: which service a token belongs to, who owns a user ID or
an alias, and whether a service knows a user or alias this server does not have."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from homeserver.appservice.api import AppServiceClient
from homeserver.appservice.registration import ApplicationService
from homeserver.errors import MatrixError


def exclusive_error(what: str) -> MatrixError:
    return MatrixError(400, "M_EXCLUSIVE", f"This {what} is reserved by an application service.")


class AppServices:
    """The registrations, indexed; lookups are dictionary or regex work, no IO."""

    def __init__(self, services: Sequence[ApplicationService], client: AppServiceClient) -> None:
        self.services: tuple[ApplicationService, ...] = tuple(services)
        self.client = client
        self._by_token = {service.as_token: service for service in self.services}
        self._by_id = {service.id: service for service in self.services}

    def __bool__(self) -> bool:
        return bool(self.services)

    def for_token(self, as_token: str) -> ApplicationService | None:
        return self._by_token.get(as_token)

    def by_id(self, service_id: str) -> ApplicationService | None:
        return self._by_id.get(service_id)

    # -- namespaces -------------------------------------------------------------

    def exclusive_owner_of_user(self, user_id: str) -> ApplicationService | None:
        for service in self.services:
            if service.is_exclusive_user(user_id):
                return service
        return None

    def check_user_allowed(self, user_id: str, service: ApplicationService | None) -> None:
        """M_EXCLUSIVE unless ``user_id`` is in no other service's exclusive namespace
        (``service``: the one acting, if any, which may use its own)."""
        for other in self.services:
            if other is not service and other.is_exclusive_user(user_id):
                raise exclusive_error("user ID")

    def interested_in_user(self, user_id: str) -> list[ApplicationService]:
        return [s for s in self.services if s.is_interested_in_user(user_id)]

    def interested_in_alias(self, alias: str) -> list[ApplicationService]:
        return [s for s in self.services if s.is_interested_in_alias(alias)]

    # -- asking the services ----------------------------------------------------

    async def query_user_exists(self, user_id: str) -> bool:
        """Ask the services whose namespace holds ``user_id`` whether they have it
        (they register it before answering yes)."""
        services = [s for s in self.interested_in_user(user_id) if s.url is not None]
        if not services:
            return False
        answers = await asyncio.gather(*(self.client.query_user(s, user_id) for s in services))
        return any(answers)

    async def query_alias_exists(self, alias: str) -> bool:
        """Ask the services whose namespace holds ``alias`` whether they have it (they
        create the alias before answering yes)."""
        services = [s for s in self.interested_in_alias(alias) if s.url is not None]
        if not services:
            return False
        answers = await asyncio.gather(*(self.client.query_alias(s, alias) for s in services))
        return any(answers)
