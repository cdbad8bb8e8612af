"""Application services: bridges and bots that own a namespace of users, aliases and
rooms (the Application Service API).

Modules: ``registration`` (PURE: the registration files and namespace matching),
``api`` (requests to the services), ``service`` (the registry the rest of the
server asks).
"""

from homeserver.appservice.api import AppServiceClient, AppServiceTimeout, AppServiceUnreachable
from homeserver.appservice.registration import (
    ApplicationService,
    Namespace,
    load_registrations,
    parse_registration,
)
from homeserver.appservice.service import AppServices

__all__ = [
    "AppServiceClient",
    "AppServiceTimeout",
    "AppServiceUnreachable",
    "AppServices",
    "ApplicationService",
    "Namespace",
    "load_registrations",
    "parse_registration",
]
