"""How clients find out that this server offers simplified sliding sync (MSC4186).

Element X (matrix-rust-sdk) and Element Web (matrix-js-sdk) follow
`.well-known/matrix/client` to the homeserver's base URL, then read
`unstable_features["org.matrix.simplified_msc3575"]` from `/versions` (before login and
again with the access token). Neither reads anything about sliding sync from the
well-known any more: `org.matrix.msc3575.proxy` named the retired sliding-sync proxy,
and Synapse does not serve it.
"""

from __future__ import annotations

from tests.conftest import HarnessFactory

FEATURE = "org.matrix.simplified_msc3575"
ENDPOINT = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def test_versions_advertises_simplified_sliding_sync(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver()
    anonymous = await hs.client.get("/_matrix/client/versions")
    assert anonymous.status == 200
    assert (await anonymous.json())["unstable_features"][FEATURE] is True

    token = (await hs.register("alice"))["access_token"]
    authed = await hs.client.get(
        "/_matrix/client/versions", headers={"Authorization": f"Bearer {token}"}
    )
    assert authed.status == 200
    assert (await authed.json())["unstable_features"][FEATURE] is True


async def test_wellknown_points_at_the_homeserver_not_a_proxy(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(public_baseurl="https://matrix.test.local/")
    resp = await hs.client.get("/.well-known/matrix/client")
    assert resp.status == 200
    body = await resp.json()
    assert body["m.homeserver"] == {"base_url": "https://matrix.test.local/"}
    assert "org.matrix.msc3575.proxy" not in body


async def test_advertised_endpoint_is_served(make_homeserver: HarnessFactory) -> None:
    """What /versions announces answers: without a token it asks for one (401), as any
    authenticated endpoint does, instead of being unknown (404 M_UNRECOGNIZED)."""
    hs = await make_homeserver()
    resp = await hs.client.post(ENDPOINT, json={"lists": {}})
    body = await resp.json()
    assert (resp.status, body["errcode"]) == (401, "M_MISSING_TOKEN"), body
