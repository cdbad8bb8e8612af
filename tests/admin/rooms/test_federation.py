"""Room admin actions in rooms other servers share: a blocked room refuses remote
joins and invites of local users; purged history comes back by backfill."""

from __future__ import annotations

from urllib.parse import quote

from tests.admin.rooms.helpers import ADMIN_V1, auth, q
from tests.federation.membership_helpers import settled
from tests.federation.rooms import settle, share_room
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import make_user


async def test_blocked_room_refuses_remote_joins_and_invites(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    carol = await make_user(b.harness, "carol")
    dave = await make_user(a.harness, "dave")
    admin = await make_user(a.harness, "admin")
    await a.server.stores.accounts.set_admin(admin.user_id, True)
    response = await a.harness.client.put(
        f"{ADMIN_V1}/rooms/{q(room_id)}/block", json={"block": True}, headers=auth(admin.token)
    )
    assert response.status == 200
    # carol (on b) cannot join a blocked room b is not in yet (make_join refused)
    other = await alice.create_room(preset="public_chat")
    response = await a.harness.client.put(
        f"{ADMIN_V1}/rooms/{q(other)}/block", json={"block": True}, headers=auth(admin.token)
    )
    assert response.status == 200
    path = f"/join/{quote(other)}?server_name={quote(a.server_name)}"
    assert (await carol.request("POST", path, {}, expect=403))["errcode"] == "M_FORBIDDEN"
    assert carol.user_id not in await a.server.stores.state.current_members(other)
    # bob (on b) cannot invite dave (on a) into it
    await bob.request(
        "POST", f"/rooms/{quote(room_id)}/invite", {"user_id": dave.user_id}, expect=None
    )
    await settle(a, b)
    assert dave.user_id not in await a.server.stores.state.current_members(room_id)
    assert dave.user_id not in await b.server.stores.state.current_members(room_id)
    # the members already in the room go on talking
    await alice.send(room_id, "still here")


async def test_purged_history_is_backfilled_again(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    admin = await make_user(a.harness, "admin")
    await a.server.stores.accounts.set_admin(admin.user_id, True)
    sent = []
    for i in range(4):
        sent.append(await alice.send(room_id, f"local {i}"))
        sent.append(await bob.send(room_id, f"remote {i}"))
        await settled(a, b)
    last = await alice.send(room_id, "last")
    await settled(a, b)
    response = await a.harness.client.post(
        f"{ADMIN_V1}/purge_history/{q(room_id)}/{q(last)}", json={}, headers=auth(admin.token)
    )
    purge_id = (await response.json())["purge_id"]
    record = await a.server.admin.history_purges.wait(purge_id)
    assert record.status == "complete"
    rows = await a.server.db.fetchall(
        "t", "SELECT event_id, outlier FROM events WHERE room_id = $1", room_id
    )
    held = {r[0]: bool(r[1]) for r in rows}
    for event_id in sent:
        if event_id in held:  # local ones are kept out of the timeline, remote ones gone
            assert held[event_id] is True
    assert any(e not in held for e in sent)

    seen: list[str] = []
    token = None
    for _ in range(20):
        params = "dir=b&limit=20" + (f"&from={quote(token)}" if token else "")
        page = await alice.request("GET", f"/rooms/{quote(room_id)}/messages?{params}")
        seen += [e["event_id"] for e in page["chunk"]]
        token = page.get("end")
        if token is None or set(sent) <= set(seen):
            break
    assert set(sent) <= set(seen)
