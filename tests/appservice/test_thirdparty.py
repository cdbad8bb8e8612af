"""Third-party lookups: /thirdparty/protocols, /protocol, /location, /user, answered
from the registrations' protocols and by asking the services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestServer

from tests.appservice.conftest import (
    SERVER_NAME,
    FakeAppService,
    registration,
    write_registration,
)
from tests.conftest import HarnessFactory, HomeserverHarness

V3 = "/_matrix/client/v3"
METADATA: dict[str, Any] = {
    "user_fields": ["network", "nickname"],
    "location_fields": ["network", "channel"],
    "icon": "mxc://example.org/icon",
    "field_types": {},
    "instances": [
        {"desc": "Libera", "network_id": "libera", "fields": {"network": "libera"}},
        {"desc": "No network", "fields": {}},
    ],
}


@pytest.fixture
async def second_service() -> AsyncIterator[tuple[FakeAppService, str]]:
    service = FakeAppService(hs_token="hs_token_two")
    server = TestServer(service.app)
    await server.start_server(access_log=None)
    try:
        yield service, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def user(hs: HomeserverHarness) -> dict[str, str]:
    alice = await hs.register("alice")
    return {"Authorization": f"Bearer {alice['access_token']}"}


def asked(service: FakeAppService, prefix: str) -> list[str]:
    return [unquote(path) for _, path in service.requests if path.startswith(prefix)]


async def test_protocols_with_instance_ids_and_cache(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    service.thirdparty_answers["/protocol/bridgeproto"] = METADATA
    headers = await user(as_hs)
    resp = await as_hs.client.get(f"{V3}/thirdparty/protocols", headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert list(body) == ["bridgeproto"]
    instances = body["bridgeproto"]["instances"]
    assert instances[0]["instance_id"] == "bridge|libera"
    assert "instance_id" not in instances[1]
    assert body["bridgeproto"]["user_fields"] == ["network", "nickname"]
    resp = await as_hs.client.get(f"{V3}/thirdparty/protocol/bridgeproto", headers=headers)
    assert resp.status == 200
    assert await resp.json() == body["bridgeproto"]
    # kept for an hour
    assert len(asked(service, "/_matrix/app/v1/thirdparty/protocol")) == 1
    as_hs.clock.advance(3601)
    await as_hs.client.get(f"{V3}/thirdparty/protocols", headers=headers)
    assert len(asked(service, "/_matrix/app/v1/thirdparty/protocol")) == 2


async def test_unknown_or_unanswered_protocol(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    headers = await user(as_hs)
    resp = await as_hs.client.get(f"{V3}/thirdparty/protocol/nonesuch", headers=headers)
    assert resp.status == 404
    assert (await resp.json())["errcode"] == "M_NOT_FOUND"
    assert service.requests == []
    # the service fails: nothing known, and nothing cached
    service.down = True
    resp = await as_hs.client.get(f"{V3}/thirdparty/protocols", headers=headers)
    assert await resp.json() == {}
    resp = await as_hs.client.get(f"{V3}/thirdparty/protocol/bridgeproto", headers=headers)
    assert resp.status == 404
    # invalid metadata (no instances) is ignored
    service.down = False
    service.thirdparty_answers["/protocol/bridgeproto"] = {"user_fields": []}
    resp = await as_hs.client.get(f"{V3}/thirdparty/protocols", headers=headers)
    assert await resp.json() == {}
    service.thirdparty_answers["/protocol/bridgeproto"] = METADATA
    resp = await as_hs.client.get(f"{V3}/thirdparty/protocols", headers=headers)
    assert list(await resp.json()) == ["bridgeproto"]


async def test_thirdparty_needs_a_token(as_hs: HomeserverHarness) -> None:
    for path in ("/thirdparty/protocols", "/thirdparty/user/bridgeproto", "/thirdparty/user"):
        resp = await as_hs.client.get(V3 + path)
        assert resp.status == 401


async def test_instances_of_two_services_are_merged(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    second_service: tuple[FakeAppService, str],
    tmp_path: Path,
) -> None:
    first, url1 = appservice
    second, url2 = second_service
    other = registration(
        url2,
        id="bridge2",
        as_token="as_token_two",
        hs_token="hs_token_two",
        sender_localpart="bot2",
        namespaces={
            "users": [{"regex": rf"@_two_.*:{SERVER_NAME}", "exclusive": True}],
            "aliases": [],
            "rooms": [],
        },
    )
    hs = await make_homeserver(
        app_service_config_files=[
            write_registration(tmp_path, registration(url1), "one.yaml"),
            write_registration(tmp_path, other, "two.yaml"),
        ]
    )
    first.thirdparty_answers["/protocol/bridgeproto"] = METADATA
    second.thirdparty_answers["/protocol/bridgeproto"] = {
        **METADATA,
        "icon": "mxc://example.org/other",
        "instances": [{"desc": "OFTC", "network_id": "oftc", "fields": {}}],
    }
    headers = await user(hs)
    resp = await hs.client.get(f"{V3}/thirdparty/protocol/bridgeproto", headers=headers)
    body = await resp.json()
    ids = sorted(i.get("instance_id", "") for i in body["instances"])
    assert ids == ["", "bridge2|oftc", "bridge|libera"]
    assert body["icon"] in ("mxc://example.org/icon", "mxc://example.org/other")


async def test_user_and_location_lookups(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    found_user = {"userid": "@_bridge_x:test.local", "protocol": "bridgeproto", "fields": {}}
    found_place = {"alias": "#_bridge_x:test.local", "protocol": "bridgeproto", "fields": {}}
    service.thirdparty_answers["/user/bridgeproto"] = [found_user, {"protocol": "bridgeproto"}]
    service.thirdparty_answers["/location/bridgeproto"] = [found_place, "junk"]
    headers = await user(as_hs)
    resp = await as_hs.client.get(
        f"{V3}/thirdparty/user/bridgeproto",
        params={"network": "libera", "nickname": "x"},
        headers=headers,
    )
    assert resp.status == 200
    assert await resp.json() == [found_user]  # the invalid entry dropped
    path = asked(service, "/_matrix/app/v1/thirdparty/user/")[0]
    assert "network=libera" in path and "nickname=x" in path and "access_token" not in path
    resp = await as_hs.client.get(f"{V3}/thirdparty/location/bridgeproto", headers=headers)
    assert await resp.json() == [found_place]
    # a protocol no service speaks: nothing, and nobody asked
    before = len(service.requests)
    resp = await as_hs.client.get(f"{V3}/thirdparty/user/nonesuch", headers=headers)
    assert resp.status == 200
    assert await resp.json() == []
    assert len(service.requests) == before
    # a failing service gives nothing
    service.down = True
    resp = await as_hs.client.get(f"{V3}/thirdparty/location/bridgeproto", headers=headers)
    assert await resp.json() == []


async def test_reverse_lookups(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    entry = {"userid": "@_bridge_x:test.local", "protocol": "bridgeproto", "fields": {"a": "b"}}
    service.thirdparty_answers["/user"] = [entry]
    place = {"alias": "#_bridge_x:test.local", "protocol": "bridgeproto", "fields": {}}
    service.thirdparty_answers["/location"] = [place]
    headers = await user(as_hs)
    resp = await as_hs.client.get(
        f"{V3}/thirdparty/user", params={"userid": "@_bridge_x:test.local"}, headers=headers
    )
    assert resp.status == 200
    assert await resp.json() == [entry]
    assert asked(service, "/_matrix/app/v1/thirdparty/user") == [
        "/_matrix/app/v1/thirdparty/user?userid=@_bridge_x:test.local"
    ]
    resp = await as_hs.client.get(
        f"{V3}/thirdparty/location", params={"alias": "#_bridge_x:test.local"}, headers=headers
    )
    assert await resp.json() == [place]
    # outside every namespace: nobody asked
    resp = await as_hs.client.get(
        f"{V3}/thirdparty/user", params={"userid": "@bob:test.local"}, headers=headers
    )
    assert await resp.json() == []
    assert len(asked(service, "/_matrix/app/v1/thirdparty/user")) == 1
    for path in ("/thirdparty/user", "/thirdparty/location"):
        resp = await as_hs.client.get(V3 + path, headers=headers)
        assert resp.status == 400
        assert (await resp.json())["errcode"] == "M_MISSING_PARAM"
