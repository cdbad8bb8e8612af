"""Third-party lookups (client-server "Third-party Lookups"): which protocols the
bridges of this server speak, and which Matrix users and rooms stand for users and
places of those networks, answered by asking the application services
(``/_matrix/app/v1/thirdparty/...``), merged as Synapse merges them.

A protocol's metadata is kept for an hour per service (as Synapse does); lookups are
asked afresh each time. Every service whose registration lists the protocol is asked
at once; one that fails or answers nonsense contributes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from homeserver.appservice.registration import ApplicationService
from homeserver.appservice.service import AppServices
from homeserver.clock import Clock
from homeserver.errors import InvalidParam, MatrixError, MissingParam

logger = logging.getLogger(__name__)

PROTOCOL_CACHE_S = 3600.0
Kind = Literal["user", "location"]
# The field a lookup result must name (as a string), beside "protocol".
_REQUIRED_FIELD = {"user": "userid", "location": "alias"}
# The query parameter a reverse lookup needs.
_REVERSE_PARAM = {"user": "userid", "location": "alias"}


def instance_id(appservice_id: str, network_id: str) -> str:
    """The ID of one network of a service, in ``instances`` and in /publicRooms's
    ``third_party_instance_id`` (Synapse's form)."""
    return f"{appservice_id}|{network_id}"


def parse_instance_id(value: str) -> tuple[str, str]:
    """(service ID, network ID) of a ``third_party_instance_id``, or M_INVALID_PARAM."""
    appservice_id, bar, network_id = value.partition("|")
    if not bar or not appservice_id or not network_id:
        raise InvalidParam(f"Invalid third_party_instance_id: {value!r}")
    return appservice_id, network_id


class ThirdPartyLookups:
    def __init__(self, appservices: AppServices, clock: Clock) -> None:
        self._appservices = appservices
        self._clock = clock
        # (service id, protocol) -> (metadata, monotonic time it was fetched)
        self._protocols: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}

    async def protocols(self, only: str | None = None) -> dict[str, dict[str, Any]]:
        """GET /thirdparty/protocols: each protocol some service answered for, its
        fields from the first answer and the ``instances`` of all of them."""
        asked: list[tuple[str, ApplicationService]] = [
            (protocol, service)
            for service in self._appservices.services
            if service.url is not None
            for protocol in service.protocols
            if only is None or protocol == only
        ]
        answers = await asyncio.gather(
            *(self._protocol_of(service, protocol) for protocol, service in asked)
        )
        merged: dict[str, dict[str, Any]] = {}
        for (protocol, _service), info in zip(asked, answers, strict=True):
            if info is None:
                continue
            if protocol not in merged:
                merged[protocol] = copy.deepcopy(info)
            else:
                merged[protocol]["instances"].extend(copy.deepcopy(info["instances"]))
        return merged

    async def protocol(self, protocol: str) -> dict[str, Any]:
        """GET /thirdparty/protocol/{protocol}; M_NOT_FOUND if no service answers."""
        found = (await self.protocols(only=protocol)).get(protocol)
        if found is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown protocol")
        return found

    async def _protocol_of(
        self, service: ApplicationService, protocol: str
    ) -> dict[str, Any] | None:
        key = (service.id, protocol)
        cached = self._protocols.get(key)
        now = self._clock.monotonic()
        if cached is not None and now - cached[1] < PROTOCOL_CACHE_S:
            return cached[0]
        info = await self._appservices.client.thirdparty(
            service, f"/protocol/{quote(protocol, safe='')}"
        )
        if not isinstance(info, dict) or not isinstance(info.get("instances"), list):
            if info is not None:
                logger.warning("application service %s: invalid protocol metadata", service.id)
            return None
        instances = []
        for instance in info["instances"]:
            if not isinstance(instance, dict):
                continue
            network_id = instance.get("network_id")
            if isinstance(network_id, str):
                instance = {**instance, "instance_id": instance_id(service.id, network_id)}
            instances.append(instance)
        info = {**info, "instances": instances}
        self._protocols[key] = (info, now)
        return info

    async def lookup(
        self, kind: Kind, protocol: str, fields: Mapping[str, str | list[str]]
    ) -> list[dict[str, Any]]:
        """GET /thirdparty/{user|location}/{protocol}: what the services speaking the
        protocol find for ``fields`` (passed on as they came)."""
        services = [
            s for s in self._appservices.services if s.url is not None and protocol in s.protocols
        ]
        path = f"/{kind}/{quote(protocol, safe='')}"
        return await self._ask(services, kind, path, fields)

    async def reverse_lookup(
        self, kind: Kind, fields: Mapping[str, str | list[str]]
    ) -> list[dict[str, Any]]:
        """GET /thirdparty/user?userid= and /thirdparty/location?alias=: the services
        whose namespace holds the Matrix user or alias say what it stands for."""
        param = _REVERSE_PARAM[kind]
        value = fields.get(param)
        if isinstance(value, list):
            value = value[0] if value else None
        if not value:
            raise MissingParam(f"Missing parameter: {param}")
        if kind == "user":
            services = self._appservices.interested_in_user(value)
        else:
            services = self._appservices.interested_in_alias(value)
        services = [s for s in services if s.url is not None]
        return await self._ask(services, kind, f"/{kind}", {param: value})

    async def _ask(
        self,
        services: list[ApplicationService],
        kind: Kind,
        path: str,
        fields: Mapping[str, str | list[str]],
    ) -> list[dict[str, Any]]:
        client = self._appservices.client
        answers = await asyncio.gather(*(client.thirdparty(s, path, fields) for s in services))
        required = _REQUIRED_FIELD[kind]
        results: list[dict[str, Any]] = []
        for service, answer in zip(services, answers, strict=True):
            if answer is None:
                continue
            if not isinstance(answer, list):
                logger.warning(
                    "application service %s: third-party %s lookup not a list", service.id, kind
                )
                continue
            for entry in answer:
                if _valid_result(entry, required):
                    results.append(entry)
                else:
                    logger.warning(
                        "application service %s: invalid third-party %s", service.id, kind
                    )
        return results


def _valid_result(entry: object, required: str) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(key), str) for key in (required, "protocol")
    )
