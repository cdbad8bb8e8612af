"""Bindings on an identity server through the homeserver: /account/3pid/bind records
where, /unbind (signed by the server) with or without naming it, /3pid/delete and
deactivation unbind; refusals and unsupported unbinds leave the records right."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.threepids.support import (
    ID_ACCESS_TOKEN,
    V3,
    FakeIdentityServer,
    SmtpSink,
    bearer,
    email_homeserver,
    register,
)

ADDRESS = "bob@example.org"


async def bind(
    hs: HomeserverHarness, token: str, identity_server: FakeIdentityServer, **changes: Any
) -> tuple[int, dict[str, Any]]:
    sid = identity_server.validate("email", ADDRESS, "secret")
    body = {
        "id_server": identity_server.name,
        "id_access_token": ID_ACCESS_TOKEN,
        "sid": sid,
        "client_secret": "secret",
        **changes,
    }
    response = await hs.client.post(f"{V3}/account/3pid/bind", json=body, headers=bearer(token))
    return response.status, await response.json()


async def post(hs: HomeserverHarness, token: str, path: str, body: dict[str, Any]) -> Any:
    response = await hs.client.post(f"{V3}{path}", json=body, headers=bearer(token))
    return response.status, await response.json()


async def test_bind_then_unbind_where_recorded(
    make_homeserver: HarnessFactory, smtp: SmtpSink, identity_server: FakeIdentityServer
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, identity_server)
    token = await register(hs, "bob")
    assert await bind(hs, token, identity_server) == (200, {})
    assert identity_server.bindings == {("email", ADDRESS): "@bob:test.local"}
    bound = await hs.server.stores.threepids.bindings_of("@bob:test.local")
    assert bound == [("email", ADDRESS, identity_server.name)]

    status, body = await post(
        hs, token, "/account/3pid/unbind", {"medium": "email", "address": ADDRESS}
    )
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    assert identity_server.bindings == {}
    assert identity_server.unbinds == [
        {"mxid": "@bob:test.local", "threepid": {"medium": "email", "address": ADDRESS}}
    ]
    assert await hs.server.stores.threepids.bindings_of("@bob:test.local") == []
    # nothing recorded any more: nothing to unbind
    status, body = await post(
        hs, token, "/account/3pid/unbind", {"medium": "email", "address": ADDRESS}
    )
    assert (status, body) == (200, {"id_server_unbind_result": "no-support"})


async def test_refused_bind_records_nothing(
    make_homeserver: HarnessFactory, smtp: SmtpSink, identity_server: FakeIdentityServer
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, identity_server)
    token = await register(hs, "bob")
    status, body = await bind(hs, token, identity_server, client_secret="wrong")
    assert (status, body["errcode"]) == (400, "M_NO_VALID_SESSION")
    status, body = await bind(hs, token, identity_server, id_access_token="bad")
    assert status == 401
    status, body = await bind(hs, token, identity_server, client_secret="bad secret!")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await bind(hs, token, identity_server, id_server="not a server/")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert identity_server.bindings == {}
    assert await hs.server.stores.threepids.bindings_of("@bob:test.local") == []


async def test_delete_unbinds_out_of_band_binding(
    make_homeserver: HarnessFactory, smtp: SmtpSink, identity_server: FakeIdentityServer
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, identity_server)
    token = await register(hs, "bob")
    identity_server.bindings[("email", ADDRESS)] = "@bob:test.local"
    status, body = await post(
        hs,
        token,
        "/account/3pid/delete",
        {"medium": "email", "address": ADDRESS, "id_server": identity_server.name},
    )
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    assert identity_server.bindings == {}
    status, body = await post(hs, token, "/account/3pid/delete", {"medium": "fax", "address": "1"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_unsupported_unbind_is_no_support(
    make_homeserver: HarnessFactory, smtp: SmtpSink, identity_server: FakeIdentityServer
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, identity_server)
    token = await register(hs, "bob")
    assert (await bind(hs, token, identity_server))[0] == 200
    identity_server.unbind_status = 501
    status, body = await post(
        hs, token, "/account/3pid/unbind", {"medium": "email", "address": ADDRESS}
    )
    assert (status, body) == (200, {"id_server_unbind_result": "no-support"})
    # as Synapse: the record goes, the identity server kept its binding
    assert await hs.server.stores.threepids.bindings_of("@bob:test.local") == []
    assert ("email", ADDRESS) in identity_server.bindings


async def test_failing_identity_server_keeps_the_record(
    make_homeserver: HarnessFactory, smtp: SmtpSink, identity_server: FakeIdentityServer
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, identity_server)
    token = await register(hs, "bob")
    assert (await bind(hs, token, identity_server))[0] == 200
    identity_server.unbind_status = 503
    status, body = await post(
        hs, token, "/account/3pid/unbind", {"medium": "email", "address": ADDRESS}
    )
    assert (status, body["errcode"]) == (500, "M_UNKNOWN")
    bound = await hs.server.stores.threepids.bindings_of("@bob:test.local")
    assert bound == [("email", ADDRESS, identity_server.name)]


async def test_deactivation_unbinds(
    make_homeserver: HarnessFactory, smtp: SmtpSink, identity_server: FakeIdentityServer
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, identity_server)
    token = await register(hs, "bob")
    assert (await bind(hs, token, identity_server))[0] == 200
    first = await hs.client.post(f"{V3}/account/deactivate", json={}, headers=bearer(token))
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "bob"},
        "password": "pw",
        "session": (await first.json())["session"],
    }
    status, body = await post(hs, token, "/account/deactivate", {"auth": auth})
    assert (status, body) == (200, {"id_server_unbind_result": "success"})
    assert identity_server.bindings == {}
    assert await hs.server.stores.threepids.bindings_of("@bob:test.local") == []
