"""A moderation session as synapse-admin (the web UI) and moderation bots run it,
through the HTTP admin API only, with their query parameters and bodies: list users,
read a report, quarantine a spammer's media, deactivate them with erase, delete
their room with purge, purge old history, send a server notice, close the report.
What each step claims is checked through the API and, for deletions, in the
database and the media store."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.media.helpers import download_path, upload
from tests.rooms.helpers import User, make_user

ADMIN = "/_synapse/admin"


class AdminTool:
    """What an admin tool does: bearer requests to /_synapse/admin."""

    def __init__(self, hs: HomeserverHarness, admin: User) -> None:
        self.hs = hs
        self.admin = admin

    async def call(
        self, method: str, path: str, body: Any = None, expect: int = 200, **params: Any
    ) -> Any:
        resp = await self.hs.client.request(
            method,
            ADMIN + path,
            json=body,
            params={
                k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()
            },
            headers=self.admin.auth,
        )
        data = await resp.json()
        assert resp.status == expect, f"{method} {path} -> {resp.status} {data}"
        return data


async def count(hs: HomeserverHarness, sql: str, *args: Any) -> int:
    return int(await hs.server.db.fetchval("admin_session_check", sql, *args))


async def test_a_moderation_session(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(
        server_notices={
            "system_mxid_localpart": "notices",
            "system_mxid_display_name": "Server Notices",
            "room_name": "Server Notices",
        }
    )
    admin = await make_user(hs, "admin")
    await hs.server.stores.accounts.set_admin(admin.user_id, True)
    tool = AdminTool(hs, admin)
    alice = await make_user(hs, "alice")
    spammer = await make_user(hs, "spammer")

    # the dashboard's first call
    version = await tool.call("GET", "/v1/server_version")
    assert isinstance(version["server_version"], str)

    # a lobby with some history, and spam in it
    lobby = await alice.create_room(preset="public_chat", name="Lobby")
    await spammer.join(lobby)
    for n in range(3):
        await alice.send(lobby, f"old message {n}")
    hs.clock.advance(60)
    cutoff = hs.clock.time_ms()
    hs.clock.advance(60)
    await alice.send(lobby, "recent message")
    media_id = await upload(hs, spammer.token, b"\x89PNG spam image", "image/png")
    spam = await spammer.send(
        lobby, "BUY NOW", "m.room.message", msgtype="m.image", url=f"mxc://test.local/{media_id}"
    )
    spam_room = await spammer.create_room(preset="public_chat", name="Spam room")
    await alice.join(spam_room)
    await spammer.send(spam_room, "more spam")
    await alice.request("POST", f"/rooms/{lobby}/report/{spam}", {"reason": "spam", "score": -100})

    # 1. the user list, as synapse-admin asks for it
    users = await tool.call(
        "GET",
        "/v2/users",
        **{"from": 0, "limit": 10, "guests": False, "order_by": "name", "dir": "f"},
    )
    names = [u["name"] for u in users["users"]]
    assert {admin.user_id, alice.user_id, spammer.user_id} <= set(names)
    assert names == sorted(names) and users["total"] == len(names)
    details = await tool.call("GET", f"/v2/users/{spammer.user_id}")
    assert details["deactivated"] is False and details["admin"] is False

    # 2. the report
    reports = await tool.call("GET", "/v1/event_reports", **{"from": 0, "limit": 10, "dir": "b"})
    assert reports["total"] == 1
    [report] = reports["event_reports"]
    assert report["event_id"] == spam and report["room_id"] == lobby
    assert report["user_id"] == alice.user_id and report["reason"] == "spam"
    full = await tool.call("GET", f"/v1/event_reports/{report['id']}")
    assert full["event_json"]["content"]["body"] == "BUY NOW"

    # 3. the spammer's media quarantined: nobody can download it any more
    quarantined = await tool.call("POST", f"/v1/user/{spammer.user_id}/media/quarantine")
    assert quarantined["num_quarantined"] == 1
    resp = await hs.client.get(download_path(media_id), headers=alice.auth)
    assert resp.status == 404

    # 4. the spammer deactivated with erase
    await tool.call("POST", f"/v1/deactivate/{spammer.user_id}", {"erase": True})
    resp = await hs.client.get("/_matrix/client/v3/account/whoami", headers=spammer.auth)
    assert resp.status == 401
    details = await tool.call("GET", f"/v2/users/{spammer.user_id}")
    assert details["deactivated"] is True and details["erased"] is True
    assert (
        await count(hs, "SELECT COUNT(*) FROM access_tokens WHERE user_id = $1", spammer.user_id)
        == 0
    )

    # 5. the spam room deleted with purge, as synapse-admin's "delete room" does
    started = await tool.call(
        "DELETE", f"/v2/rooms/{spam_room}", {"block": True, "purge": True, "message": "Removed"}
    )
    delete_id = started["delete_id"]
    status = await tool.call("GET", f"/v2/rooms/delete_status/{delete_id}")
    assert status["status"] in ("scheduled", "active", "shutting_down", "purging", "complete")
    await hs.server.admin.room_deletion.wait(delete_id)
    status = await tool.call("GET", f"/v2/rooms/delete_status/{delete_id}")
    assert status["status"] == "complete"
    assert alice.user_id in status["shutdown_room"]["kicked_users"]
    assert await count(hs, "SELECT COUNT(*) FROM events WHERE room_id = $1", spam_room) == 0
    await tool.call("GET", f"/v1/rooms/{spam_room}", expect=404)
    blocked = await tool.call("GET", f"/v1/rooms/{spam_room}/block")
    assert blocked["block"] is True
    refused = await alice.request("POST", f"/rooms/{spam_room}/join", {}, expect=403)
    assert refused["errcode"] == "M_FORBIDDEN"

    # 6. the lobby's old history purged
    purge = await tool.call(
        "POST",
        f"/v1/purge_history/{lobby}",
        {"delete_local_events": True, "purge_up_to_ts": cutoff},
    )
    await hs.server.admin.history_purges.wait(purge["purge_id"])
    assert (await tool.call("GET", f"/v1/purge_history_status/{purge['purge_id']}"))[
        "status"
    ] == "complete"
    held = await hs.server.db.fetchall(
        "admin_session_check",
        "SELECT json FROM events WHERE room_id = $1 AND type = 'm.room.message'",
        lobby,
    )
    bodies = " ".join(row[0] for row in held)
    assert "old message" not in bodies and "recent message" in bodies
    messages = await alice.request("GET", f"/rooms/{lobby}/messages?dir=b&limit=50")
    assert "recent message" in [e["content"].get("body") for e in messages["chunk"]]

    # 7. a server notice reaches alice in a room she cannot write in
    sent = await tool.call(
        "POST",
        "/v1/send_server_notice",
        {"user_id": alice.user_id, "content": {"msgtype": "m.text", "body": "Maintenance tonight"}},
    )
    assert sent["event_id"].startswith("$")
    sync = await alice.sync()
    [notice_room] = list(sync["rooms"]["invite"])
    await alice.join(notice_room)
    timeline = await alice.request("GET", f"/rooms/{notice_room}/messages?dir=b&limit=10")
    assert "Maintenance tonight" in [e["content"].get("body") for e in timeline["chunk"]]
    await alice.request(
        "PUT", f"/rooms/{notice_room}/send/m.room.message/reply", {"body": "ok"}, expect=403
    )

    # 8. the report closed
    await tool.call("DELETE", f"/v1/event_reports/{report['id']}")
    assert (await tool.call("GET", "/v1/event_reports"))["total"] == 0
