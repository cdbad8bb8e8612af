"""Inbound request authentication in process (server-server API "Request
Authentication"): bodies and query strings covered by the signature, several
headers, the inbound domain whitelist."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from signedjson.key import generate_signing_key
from yarl import URL

from federation.auth import FederationAuthenticator
from federation.xmatrix import sign_request
from homeserver.clock import FakeClock
from homeserver.events.signing import ServerKey, verify_json
from homeserver.http.middleware import make_middlewares

ORIGIN = "origin.test"
US = "us.test"
KEY = generate_signing_key("k1")
SECOND_KEY = generate_signing_key("k2")


class StaticVerifier:
    """Knows the origin's keys; no network."""

    def __init__(self, keys: Mapping[str, ServerKey]) -> None:
        self._keys = keys

    async def verify_json_for_server(
        self, obj: Mapping[str, Any], server_name: str, min_valid_ts: int
    ) -> None:
        keys = self._keys if server_name == ORIGIN else {}
        verify_json(obj, server_name, lambda _s, k: keys.get(k))


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    verifier = StaticVerifier(
        {
            "ed25519:k1": ServerKey(KEY.verify_key),
            "ed25519:k2": ServerKey(SECOND_KEY.verify_key),
        }
    )
    auth = FederationAuthenticator(
        US, verifier, FakeClock(), domain_whitelist=frozenset({ORIGIN, "other.test"})
    )

    async def echo(origin: str, request: web.Request) -> web.Response:
        return web.json_response({"origin": origin, "body": await request.text()})

    app = web.Application(middlewares=make_middlewares(1024 * 1024))
    app.router.add_route("*", "/_matrix/federation/v1/echo/{thing}", auth.authenticated(echo))
    test_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def signed(method: str, uri: str, content: Any = None, *, key: Any = KEY) -> dict[str, str]:
    return {"Authorization": sign_request(ORIGIN, key, US, method, uri, content)}


async def test_body_is_covered_by_the_signature(client: TestClient[Any, Any]) -> None:
    uri = "/_matrix/federation/v1/echo/x"
    body = {"pdus": [{"é": 1}], "edus": []}
    raw = json.dumps(body)
    response = await client.put(uri, data=raw, headers=signed("PUT", uri, body))
    assert response.status == 200
    assert (await response.json())["origin"] == ORIGIN
    response = await client.put(
        uri, data=json.dumps({"pdus": []}), headers=signed("PUT", uri, body)
    )
    assert response.status == 401
    # signed without content but sent with a body
    response = await client.post(uri, data=raw, headers=signed("POST", uri))
    assert response.status == 401
    response = await client.post(uri, data="{nope", headers=signed("POST", uri))
    assert (response.status, (await response.json())["errcode"]) == (400, "M_NOT_JSON")


async def test_encoded_path_and_query_are_signed_as_sent(client: TestClient[Any, Any]) -> None:
    uri = "/_matrix/federation/v1/echo/%21room%3Aa.test?limit=5&v=%24e&v=x"
    base = str(client.make_url("/")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        url = URL(base + uri, encoded=True)
        async with session.get(url, headers=signed("GET", uri)) as response:
            assert response.status == 200, await response.text()
        url = URL(base + uri.replace("limit=5", "limit=6"), encoded=True)
        async with session.get(url, headers=signed("GET", uri)) as response:
            assert response.status == 401


async def test_several_headers_of_one_origin(client: TestClient[Any, Any]) -> None:
    uri = "/_matrix/federation/v1/echo/x"
    first = sign_request(ORIGIN, KEY, US, "GET", uri)
    second = sign_request(ORIGIN, SECOND_KEY, US, "GET", uri)
    headers = [("Authorization", first), ("Authorization", second)]
    assert (await client.get(uri, headers=headers)).status == 200
    bad_second = second.replace('sig="', 'sig="AAAA')
    headers = [("Authorization", first), ("Authorization", bad_second)]
    assert (await client.get(uri, headers=headers)).status == 401
    mixed = sign_request("other.test", KEY, US, "GET", uri)
    headers = [("Authorization", first), ("Authorization", mixed)]
    assert (await client.get(uri, headers=headers)).status == 401


async def test_method_is_covered(client: TestClient[Any, Any]) -> None:
    uri = "/_matrix/federation/v1/echo/x"
    response = await client.delete(uri, headers=signed("GET", uri))
    assert response.status == 401


async def test_origin_outside_the_whitelist_is_forbidden(client: TestClient[Any, Any]) -> None:
    uri = "/_matrix/federation/v1/echo/x"
    header = sign_request("stranger.test", KEY, US, "GET", uri)
    response = await client.get(uri, headers={"Authorization": header})
    assert (response.status, (await response.json())["errcode"]) == (403, "M_FORBIDDEN")
