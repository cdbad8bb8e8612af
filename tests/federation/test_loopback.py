"""Two (or three) homeservers of this project federating over real loopback HTTPS:
key fetching, X-Matrix signing and checking, TLS and address policy."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from federation.errors import FederationDenied, FederationError
from federation.xmatrix import sign_request
from tests.federation.servers import FederatingServer, ServerFactory, TlsFiles

# An authenticated endpoint that answers 404 for unknown media once the request is
# authenticated: 404 proves the signature was accepted, 401 that it was not.
PROBE = "/_matrix/federation/v1/media/download/nosuchmedia"


async def raw_get(
    target: FederatingServer, path: str, authorization: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": authorization} if authorization else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{target.base_url}{path}", headers=headers, ssl=False) as resp:
            return resp.status, await resp.json()


async def test_version_needs_no_authentication(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    answer = await a.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")
    assert answer["server"]["name"] == "homeserver"
    assert isinstance(answer["server"]["version"], str)


async def test_signed_request_is_accepted_and_keys_are_cached(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(b.server_name, PROBE)
    assert (caught.value.status, caught.value.errcode) == (404, "M_NOT_FOUND")
    stored = await b.server.stores.server_keys.get_keys([a.server_name])
    key_id = f"ed25519:{a.server.signing_key.version}"
    assert set(stored[a.server_name]) == {key_id}
    row = stored[a.server_name][key_id]
    assert row.from_server == a.server_name and not row.expired
    assert row.valid_until_ts == a.clock.time_ms() + 86_400_000
    response = await b.server.stores.server_keys.get_response(a.server_name)
    assert response is not None and response.response["server_name"] == a.server_name


async def test_requests_with_bad_credentials_are_rejected(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    key = a.server.signing_key

    def header(destination: str = b.server_name, uri: str = PROBE) -> str:
        return sign_request(a.server_name, key, destination, "GET", uri)

    good = header()
    assert (await raw_get(b, PROBE, good))[0] == 404
    cases = {
        "no header": None,
        "not X-Matrix": "Bearer abc",
        "wrong destination": header(destination="elsewhere.test"),
        "signed for another uri": header(uri="/_matrix/federation/v1/media/download/other"),
        "bad signature": good.replace('sig="', 'sig="AAAA'),
        "unknown key": good.replace(f"ed25519:{key.version}", "ed25519:unknown"),
        "origin without keys": good.replace(f'origin="{a.server_name}"', 'origin="127.0.0.1:1"'),
    }
    for name, authorization in cases.items():
        status, body = await raw_get(b, PROBE, authorization)
        assert (status, body.get("errcode")) == (401, "M_UNAUTHORIZED"), name
    # a header that is not well-formed is a bad request (as Synapse answers)
    malformed = {
        "no values": "X-Matrix origin=",
        "invalid origin": good.replace(f'origin="{a.server_name}"', 'origin="bad host"'),
        "non-numeric port": good.replace(f'origin="{a.server_name}"', 'origin="localhost:http"'),
    }
    for name, authorization in malformed.items():
        status, body = await raw_get(b, PROBE, authorization)
        assert (status, body.get("errcode")) == (400, "M_UNAUTHORIZED"), name


async def test_destination_may_be_omitted_by_old_servers(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    signed = sign_request(a.server_name, a.server.signing_key, b.server_name, "GET", PROBE)
    old_style = signed.replace(f',destination="{b.server_name}"', "")
    assert "destination" not in old_style
    assert (await raw_get(b, PROBE, old_style))[0] == 404


async def test_signature_covers_the_query_string(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(b.server_name, PROBE, {"timeout_ms": "5", "x": ["é", "b c"]})
    assert caught.value.status == 404


async def test_inbound_domain_whitelist_is_403(federation_servers: ServerFactory) -> None:
    (a,) = await federation_servers(1)
    (b,) = await federation_servers(1, federation_domain_whitelist=["friend.test", a.server_name])
    (c,) = await federation_servers(1)
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(b.server_name, PROBE)
    assert caught.value.status == 404
    # c is not whitelisted by b; b is not whitelisted... c may still send
    with pytest.raises(FederationError) as caught:
        await c.fed.client.get_json(b.server_name, PROBE)
    assert (caught.value.status, caught.value.errcode) == (403, "M_FORBIDDEN")


async def test_outbound_domain_whitelist(federation_servers: ServerFactory) -> None:
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(1, federation_domain_whitelist=["friend.test"])
    with pytest.raises(FederationDenied):
        await a.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")


async def test_blacklisted_addresses_are_refused(federation_servers: ServerFactory) -> None:
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(1, federation_ip_range_whitelist=[])
    with pytest.raises(FederationDenied):  # localhost resolves to 127.0.0.1 only
        await a.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")
    with pytest.raises(FederationDenied):  # an IP literal is checked before connecting
        await a.fed.client.get_json(f"127.0.0.1:{b.port}", "/_matrix/federation/v1/version")
    with pytest.raises(FederationDenied):
        await a.fed.client.get_json("[::1]:1", "/_matrix/federation/v1/version")


async def test_ip_literal_destination(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    answer = await a.fed.client.get_json(f"127.0.0.1:{b.port}", "/_matrix/federation/v1/version")
    assert answer["server"]["name"] == "homeserver"
    # the destination in the signature is the IP literal, which is not b's name: 401
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(f"127.0.0.1:{b.port}", PROBE)
    assert caught.value.status == 401


async def test_certificates_are_verified_by_default(federation_servers: ServerFactory) -> None:
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(1, federation_verify_certificates=True)
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")
    assert caught.value.status is None
    assert not isinstance(caught.value, FederationDenied)


async def test_unreachable_server_is_a_federation_error(federation_servers: ServerFactory) -> None:
    (a,) = await federation_servers(1)
    from tests.federation.servers import free_port

    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(f"localhost:{free_port()}", "/_matrix/federation/v1/version")
    assert caught.value.status is None and caught.value.retryable


async def test_key_expiry_makes_the_receiver_fetch_again(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    with pytest.raises(FederationError):
        await a.fed.client.get_json(b.server_name, PROBE)
    first = (await b.server.stores.server_keys.get_response(a.server_name)).fetched_ts  # type: ignore[union-attr]
    a.clock.advance(3600)  # still valid: no fetch
    with pytest.raises(FederationError):
        await a.fed.client.get_json(b.server_name, PROBE)
    same = (await b.server.stores.server_keys.get_response(a.server_name)).fetched_ts  # type: ignore[union-attr]
    assert same == first
    a.clock.advance(2 * 86_400)  # a's key response has expired: b fetches it again
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(b.server_name, PROBE)
    assert caught.value.status == 404
    again = (await b.server.stores.server_keys.get_response(a.server_name)).fetched_ts  # type: ignore[union-attr]
    assert again == a.clock.time_ms()


async def test_keys_through_a_notary(federation_servers: ServerFactory) -> None:
    origin, notary = await federation_servers(2)
    (c,) = await federation_servers(1, trusted_key_servers=[{"server_name": notary.server_name}])
    keys = await c.fed.keyring.get_server_keys(origin.server_name, [], c.clock.time_ms())
    assert set(keys) == {f"ed25519:{origin.server.signing_key.version}"}
    stored = await c.server.stores.server_keys.get_keys([origin.server_name, notary.server_name])
    (row,) = stored[origin.server_name].values()
    assert row.from_server == notary.server_name
    assert stored[notary.server_name]  # the notary's own keys, fetched directly
    # the notary kept origin's response for others
    assert await notary.server.stores.server_keys.get_response(origin.server_name) is not None


async def test_pinned_notary_key_that_does_not_match_falls_back_to_direct(
    federation_servers: ServerFactory,
) -> None:
    origin, notary = await federation_servers(2)
    wrong_key = "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw"
    (c,) = await federation_servers(
        1,
        trusted_key_servers=[
            {"server_name": notary.server_name, "verify_keys": {"ed25519:x": wrong_key}}
        ],
    )
    keys = await c.fed.keyring.get_server_keys(origin.server_name, [], c.clock.time_ms())
    assert keys
    stored = await c.server.stores.server_keys.get_keys([origin.server_name])
    (row,) = stored[origin.server_name].values()
    assert row.from_server == origin.server_name


async def test_pinned_notary_key(federation_servers: ServerFactory) -> None:
    from homeserver.events.canonical import encode_base64

    origin, notary = await federation_servers(2)
    key = notary.server.signing_key
    pinned = {f"ed25519:{key.version}": encode_base64(key.verify_key.encode())}
    (c,) = await federation_servers(
        1, trusted_key_servers=[{"server_name": notary.server_name, "verify_keys": pinned}]
    )
    keys = await c.fed.keyring.get_server_keys(origin.server_name, [], c.clock.time_ms())
    assert keys
    stored = await c.server.stores.server_keys.get_keys([origin.server_name, notary.server_name])
    assert next(iter(stored[origin.server_name].values())).from_server == notary.server_name
    assert stored[notary.server_name] == {}  # pinned: never fetched


async def test_custom_ca_list_is_trusted(
    federation_servers: ServerFactory, tls_files: TlsFiles
) -> None:
    """federation_custom_ca_list: certificates signed by a listed authority verify
    (the test certificate is self-signed, so it is its own authority)."""
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(
        1,
        federation_verify_certificates=True,
        federation_custom_ca_list=[str(tls_files.certificate)],
    )
    answer = await a.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")
    assert answer["server"]["name"] == "homeserver"


async def test_insecure_client_option_skips_certificate_checks(
    federation_servers: ServerFactory,
) -> None:
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(
        1,
        federation_verify_certificates=True,
        use_insecure_ssl_client_just_for_testing_do_not_use=True,
    )
    answer = await a.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")
    assert answer["server"]["name"] == "homeserver"


async def test_legacy_federation_ip_range_blacklist_replaces_the_whitelists(
    federation_servers: ServerFactory,
) -> None:
    """federation_ip_range_blacklist (Synapse's older option) is the only list
    federation checks when set: the whitelist of 127.0.0.0/8 no longer applies."""
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(1, federation_ip_range_blacklist=["127.0.0.0/8"])
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")
    assert caught.value.status is None
    (c,) = await federation_servers(1, federation_ip_range_blacklist=[])
    answer = await c.fed.client.get_json(b.server_name, "/_matrix/federation/v1/version")
    assert answer["server"]["name"] == "homeserver"
