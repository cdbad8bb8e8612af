"""m.login.terms and the privacy policy page (/_matrix/consent), with user_consent."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.observability.support import free_port
from tests.registration.support import V3, stage, start

TERMS = "m.login.terms"
FORM_SECRET = "form-secret"
BASEURL = "https://matrix.example.org/"
FALLBACK = f"{V3}/auth/{TERMS}/fallback/web"


def mac(user: str, secret: str = FORM_SECRET) -> str:
    return hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()


async def consent_homeserver(make_homeserver: HarnessFactory, **consent: Any) -> HomeserverHarness:
    section: dict[str, Any] = {"version": "1.0", "require_at_registration": True}
    section.update(consent)
    return await make_homeserver(
        user_consent=section, form_secret=FORM_SECRET, public_baseurl=BASEURL
    )


async def consented_version(hs: HomeserverHarness, user_id: str) -> str | None:
    record = await hs.server.stores.consent.get(user_id)
    assert record is not None
    return record.consent_version


async def test_terms_stage_registers_and_records_consent(make_homeserver: HarnessFactory) -> None:
    hs = await consent_homeserver(make_homeserver, policy_name="Our Policy")
    state = await start(hs)
    assert state["flows"] == [{"stages": [TERMS, "m.login.dummy"]}]
    assert state["params"] == {
        TERMS: {
            "policies": {
                "privacy_policy": {
                    "version": "1.0",
                    "en": {"name": "Our Policy", "url": f"{BASEURL}_matrix/consent?v=1.0"},
                }
            }
        }
    }
    status, body = await stage(hs, state["session"], {"type": TERMS})
    assert status == 401 and body["completed"] == [TERMS]
    status, body = await stage(hs, state["session"], {"type": "m.login.dummy"})
    assert status == 200, body
    assert await consented_version(hs, body["user_id"]) == "1.0"


async def test_consent_not_required_at_registration(make_homeserver: HarnessFactory) -> None:
    hs = await consent_homeserver(make_homeserver, require_at_registration=False)
    state = await start(hs)
    assert state["flows"] == [{"stages": ["m.login.dummy"]}] and state["params"] == {}
    status, body = await stage(hs, state["session"], {"type": "m.login.dummy"})
    assert status == 200
    assert await consented_version(hs, body["user_id"]) is None


async def test_terms_fallback_page(make_homeserver: HarnessFactory) -> None:
    hs = await consent_homeserver(make_homeserver)
    state = await start(hs)
    page = await hs.client.get(FALLBACK, params={"session": state["session"]})
    assert page.status == 200
    text = await page.text()
    assert f'href="{BASEURL}_matrix/consent?v=1.0"' in text
    missing = await hs.client.post(FALLBACK, data={})
    assert missing.status == 400 and (await missing.json())["errcode"] == "M_MISSING_PARAM"
    unknown = await hs.client.post(FALLBACK, data={"session": "nope"})
    assert unknown.status == 400 and (await unknown.json())["errcode"] == "M_UNKNOWN"
    done = await hs.client.post(FALLBACK, data={"session": state["session"]})
    assert done.status == 200 and "authDone" in await done.text()
    status, body = await stage(hs, state["session"], {"type": "m.login.dummy"})
    assert status == 200, body
    assert await consented_version(hs, body["user_id"]) == "1.0"


async def test_without_user_consent_terms_are_unknown(hs: HomeserverHarness) -> None:
    state = await start(hs)
    status, body = await stage(hs, state["session"], {"type": TERMS})
    assert status == 401 and body["errcode"] == "M_UNRECOGNIZED"
    resp = await hs.client.get("/_matrix/consent")
    assert resp.status == 404
    resp = await hs.client.get(FALLBACK, params={"session": state["session"]})
    assert resp.status == 404


# -- the consent page ----------------------------------------------------------------


async def test_builtin_consent_page_and_agreeing(make_homeserver: HarnessFactory) -> None:
    hs = await consent_homeserver(make_homeserver, require_at_registration=False)
    user = await hs.register("bob")
    public = await hs.client.get("/_matrix/consent")
    assert public.status == 200 and "Version 1.0" in await public.text()
    assert "<form" not in await public.text()
    page = await hs.client.get("/_matrix/consent", params={"u": "bob", "h": mac("bob")})
    text = await page.text()
    assert page.status == 200 and "<form" in text and mac("bob") in text
    agreed = await hs.client.post(
        "/_matrix/consent", data={"v": "1.0", "u": "bob", "h": mac("bob")}
    )
    assert agreed.status == 200 and "recorded" in await agreed.text()
    assert await consented_version(hs, user["user_id"]) == "1.0"
    page = await hs.client.get("/_matrix/consent", params={"u": "bob", "h": mac("bob")})
    assert "You have agreed" in await page.text()
    # a full user ID works too, with its own HMAC
    full = "@bob:test.local"
    agreed = await hs.client.post(
        "/_matrix/consent", params={"v": "2.0", "u": full, "h": mac(full)}
    )
    assert agreed.status == 200
    assert await consented_version(hs, full) == "2.0"


@pytest.mark.parametrize(
    ("method", "params", "status", "errcode"),
    [
        ("GET", {"u": "bob"}, 400, "M_MISSING_PARAM"),
        ("GET", {"u": "bob", "h": mac("alice")}, 403, "M_FORBIDDEN"),
        ("GET", {"u": "bob", "h": mac("bob", "other")}, 403, "M_FORBIDDEN"),
        ("GET", {"u": "nobody", "h": mac("nobody")}, 404, "M_NOT_FOUND"),
        ("GET", {"v": "../../etc/passwd"}, 404, "M_NOT_FOUND"),
        ("POST", {"u": "bob", "h": mac("bob")}, 400, "M_MISSING_PARAM"),
        ("POST", {"v": "1.0", "h": mac("bob")}, 400, "M_MISSING_PARAM"),
        ("POST", {"v": "1.0", "u": "bob"}, 400, "M_MISSING_PARAM"),
        ("POST", {"v": "1.0", "u": "bob", "h": "00"}, 403, "M_FORBIDDEN"),
        ("POST", {"v": "1.0", "u": "bob", "h": "é"}, 403, "M_FORBIDDEN"),
        ("POST", {"v": "1.0", "u": "nobody", "h": mac("nobody")}, 404, "M_NOT_FOUND"),
        ("POST", {"v": "../x", "u": "bob", "h": mac("bob")}, 404, "M_NOT_FOUND"),
    ],
)
async def test_bad_consent_requests(
    make_homeserver: HarnessFactory,
    method: str,
    params: dict[str, str],
    status: int,
    errcode: str,
) -> None:
    hs = await consent_homeserver(make_homeserver, require_at_registration=False)
    user = await hs.register("bob")
    if method == "GET":
        resp = await hs.client.get("/_matrix/consent", params=params)
    else:
        resp = await hs.client.post("/_matrix/consent", data=params)
    assert resp.status == status, await resp.text()
    assert (await resp.json())["errcode"] == errcode
    assert await consented_version(hs, user["user_id"]) is None


async def test_consent_templates_from_template_dir(
    make_homeserver: HarnessFactory, tmp_path: Path
) -> None:
    templates = tmp_path / "policy"
    (templates / "en").mkdir(parents=True)
    (templates / "en" / "1.0.html").write_text(
        "<p>Policy {{ version }} for {{ user }}: "
        "{% if has_consented %}agreed{% else %}not yet{% endif %}</p>"
    )
    (templates / "en" / "success.html").write_text("<p>Sweet.</p>")
    hs = await consent_homeserver(
        make_homeserver, require_at_registration=False, template_dir=str(templates)
    )
    await hs.register("carol")
    page = await hs.client.get("/_matrix/consent", params={"u": "<carol>", "h": mac("<carol>")})
    assert page.status == 404  # (no such user; the name is never put in a page unescaped)
    page = await hs.client.get("/_matrix/consent", params={"u": "carol", "h": mac("carol")})
    assert await page.text() == "<p>Policy 1.0 for carol: not yet</p>"
    agreed = await hs.client.post(
        "/_matrix/consent", data={"v": "1.0", "u": "carol", "h": mac("carol")}
    )
    assert await agreed.text() == "<p>Sweet.</p>"
    page = await hs.client.get("/_matrix/consent", params={"u": "carol", "h": mac("carol")})
    assert await page.text() == "<p>Policy 1.0 for carol: agreed</p>"
    unknown = await hs.client.get("/_matrix/consent", params={"v": "2.0"})
    assert unknown.status == 404 and (await unknown.json())["errcode"] == "M_NOT_FOUND"


# -- block_events_error ----------------------------------------------------------------


async def test_block_events_until_consent(make_homeserver: HarnessFactory) -> None:
    hs = await consent_homeserver(
        make_homeserver,
        require_at_registration=False,
        block_events_error="Agree to %(consent_uri)s first",
    )
    user = await hs.register("dave")
    auth = {"Authorization": f"Bearer {user['access_token']}"}
    refused = await hs.client.post(f"{V3}/createRoom", json={}, headers=auth)
    assert refused.status == 403
    assert (await refused.json())["errcode"] == "M_CONSENT_NOT_GIVEN"
    # dave agreed to an older version: he made a room then, and must agree again now
    await hs.server.stores.consent.set_consent_version(user["user_id"], "1.0", 0)
    room = await hs.client.post(f"{V3}/createRoom", json={}, headers=auth)
    assert room.status == 200, await room.text()
    room_id = (await room.json())["room_id"]
    await hs.server.stores.consent.set_consent_version(user["user_id"], "0.9", 0)
    send = f"{V3}/rooms/{room_id}/send/m.room.message/t1"
    blocked = await hs.client.put(send, json={"msgtype": "m.text", "body": "hi"}, headers=auth)
    assert blocked.status == 403
    body = await blocked.json()
    uri = f"{BASEURL}_matrix/consent?u=dave&h={mac('dave')}"
    assert body == {
        "errcode": "M_CONSENT_NOT_GIVEN",
        "error": f"Agree to {uri} first",
        "consent_uri": uri,
    }
    topic = await hs.client.put(
        f"{V3}/rooms/{room_id}/state/m.room.topic", json={"topic": "x"}, headers=auth
    )
    assert topic.status == 403
    agreed = await hs.client.post(
        "/_matrix/consent", data={"v": "1.0", "u": "dave", "h": mac("dave")}
    )
    assert agreed.status == 200
    sent = await hs.client.put(send, json={"msgtype": "m.text", "body": "hi"}, headers=auth)
    assert sent.status == 200, await sent.text()
    # leaving is always allowed
    await hs.server.stores.consent.set_consent_version(user["user_id"], "0.9", 0)
    leave = await hs.client.put(
        f"{V3}/rooms/{room_id}/state/m.room.member/{user['user_id']}",
        json={"membership": "leave"},
        headers=auth,
    )
    assert leave.status == 200, await leave.text()


async def test_a_consent_listener_serves_only_the_policy_page(
    make_homeserver: HarnessFactory,
) -> None:
    """Synapse's ``consent`` listener resource: the policy page alone, on its own port."""
    port = free_port()
    hs = await make_homeserver(
        user_consent={"version": "1.0"},
        form_secret=FORM_SECRET,
        public_baseurl=BASEURL,
        listeners=[
            {"port": port, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["consent"]}]}
        ],
    )
    await hs.server.start_listeners()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/_matrix/consent") as page:
                assert page.status == 200 and "Version 1.0" in await page.text()
            async with session.get(f"http://127.0.0.1:{port}/_matrix/client/versions") as other:
                assert other.status == 404
    finally:
        await hs.server.stop_listeners()


async def test_joins_invites_and_knocks_wait_for_consent(make_homeserver: HarnessFactory) -> None:
    """Without consent a user cannot join, knock or invite (as Synapse), except in
    their server notices room, where the notice asking for consent arrives."""
    hs = await make_homeserver(
        user_consent={"version": "1.0", "block_events_error": "Agree to %(consent_uri)s"},
        form_secret=FORM_SECRET,
        public_baseurl=BASEURL,
        server_notices={"system_mxid_localpart": "notices"},
    )
    owner = await hs.register("owner")
    erin = await hs.register("erin")
    owner_auth = {"Authorization": f"Bearer {owner['access_token']}"}
    erin_auth = {"Authorization": f"Bearer {erin['access_token']}"}
    await hs.server.stores.consent.set_consent_version(owner["user_id"], "1.0", 0)
    room = await hs.client.post(
        f"{V3}/createRoom", json={"preset": "public_chat"}, headers=owner_auth
    )
    room_id = (await room.json())["room_id"]
    knock_room = await hs.client.post(
        f"{V3}/createRoom",
        json={"initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]},
        headers=owner_auth,
    )
    knock_room_id = (await knock_room.json())["room_id"]
    for method, path, body in (
        ("POST", f"{V3}/join/{room_id}", {}),
        ("POST", f"{V3}/rooms/{room_id}/join", {}),
        ("POST", f"{V3}/knock/{knock_room_id}", {}),
        ("POST", f"{V3}/rooms/{room_id}/invite", {"user_id": owner["user_id"]}),
    ):
        response = await hs.client.request(method, path, json=body, headers=erin_auth)
        assert response.status == 403, path
        assert (await response.json())["errcode"] == "M_CONSENT_NOT_GIVEN"
    members = await hs.server.stores.state.current_members(room_id)
    assert erin["user_id"] not in members
    # the server notices room: erin can join it to read the notice
    notices = hs.server.admin.server_notices
    await notices.send(erin["user_id"], {"msgtype": "m.text", "body": "Please agree"})
    notice_room = await hs.server.stores.server_notices.room_of(erin["user_id"])
    assert notice_room is not None
    joined = await hs.client.post(f"{V3}/rooms/{notice_room}/join", json={}, headers=erin_auth)
    assert joined.status == 200, await joined.text()
    # once agreed, the rest opens up
    await hs.client.post("/_matrix/consent", data={"v": "1.0", "u": "erin", "h": mac("erin")})
    joined = await hs.client.post(f"{V3}/join/{room_id}", json={}, headers=erin_auth)
    assert joined.status == 200, await joined.text()


async def notice_messages(hs: HomeserverHarness, user_id: str) -> list[dict[str, Any]]:
    room_id = await hs.server.stores.server_notices.room_of(user_id)
    if room_id is None:
        return []
    rows = await hs.server.db.fetchall(
        "t",
        "SELECT event_id FROM events WHERE room_id = $1 AND type = 'm.room.message'"
        " ORDER BY stream_ordering",
        room_id,
    )
    events = await hs.server.stores.events.get_events([r[0] for r in rows])
    return [dict(events[r[0]].event.content) for r in rows]


async def test_the_consent_server_notice(make_homeserver: HarnessFactory) -> None:
    """``server_notice_content``: a user who owes consent gets it once per version when
    they sync, with their own link; one who agreed, and guests (by default), do not."""
    hs = await make_homeserver(
        user_consent={
            "version": "1.0",
            "server_notice_content": {
                "msgtype": "m.text",
                "body": "Please agree: %(consent_uri)s",
                "extra": {"link": "%(consent_uri)s"},
            },
        },
        form_secret=FORM_SECRET,
        public_baseurl=BASEURL,
        server_notices={"system_mxid_localpart": "notices"},
        allow_guest_access=True,
    )
    frank = await hs.register("frank")
    auth = {"Authorization": f"Bearer {frank['access_token']}"}
    first = await hs.client.get(f"{V3}/sync", headers=auth)
    assert first.status == 200
    uri = f"{BASEURL}_matrix/consent?u=frank&h={mac('frank')}"
    notices = await notice_messages(hs, frank["user_id"])
    assert notices == [
        {"msgtype": "m.text", "body": f"Please agree: {uri}", "extra": {"link": uri}}
    ]
    # the invite to the notices room is in the sync after
    body = await (await hs.client.get(f"{V3}/sync", headers=auth)).json()
    notice_room = await hs.server.stores.server_notices.room_of(frank["user_id"])
    assert notice_room in body["rooms"]["invite"]
    assert len(await notice_messages(hs, frank["user_id"])) == 1  # once per version
    # a user who agreed gets none
    gina = await hs.register("gina")
    await hs.client.post("/_matrix/consent", data={"v": "1.0", "u": "gina", "h": mac("gina")})
    await hs.client.get(f"{V3}/sync", headers={"Authorization": f"Bearer {gina['access_token']}"})
    assert await notice_messages(hs, gina["user_id"]) == []
    # nor does a guest
    guest = await hs.client.post(f"{V3}/register?kind=guest", json={})
    guest_body = await guest.json()
    await hs.client.get(
        f"{V3}/sync", headers={"Authorization": f"Bearer {guest_body['access_token']}"}
    )
    assert await notice_messages(hs, guest_body["user_id"]) == []
