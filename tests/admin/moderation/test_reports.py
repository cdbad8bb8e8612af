"""Reporting content (events, rooms, users) through the client API, and the event
reports admin API (list, read, delete), checked in the database."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.moderation.helpers import (
    ADMIN,
    CLIENT,
    admin_and_user,
    auth,
    check_admin_only,
    create_room,
    expect_error,
    join,
    send,
)
from tests.conftest import HarnessFactory, HomeserverHarness


async def rows(hs: HomeserverHarness, table: str) -> list[Any]:
    columns = {
        "event_reports": "id, room_id, event_id, user_id, reason",
        "room_reports": "id, room_id, user_id, reason",
        "user_reports": "id, target_user_id, user_id, reason",
    }[table]
    return list(
        await hs.server.db.fetchall("test_reports", f"SELECT {columns} FROM {table} ORDER BY id")
    )


async def report_event(
    hs: HomeserverHarness, token: str, room_id: str, event_id: str, body: Any
) -> Any:
    return await hs.client.post(
        f"{CLIENT}/rooms/{room_id}/report/{event_id}", json=body, headers=auth(token)
    )


async def named_room(hs: HomeserverHarness, token: str) -> str:
    return await create_room(hs, token, preset="public_chat", name="Lobby", room_alias_name="lobby")


async def test_event_report_is_listed_read_and_deleted(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    spammer = str((await hs.register("spammer"))["access_token"])
    room_id = await named_room(hs, user)
    await join(hs, spammer, room_id)
    event_id = await send(hs, spammer, room_id, {"msgtype": "m.text", "body": "buy now"})
    response = await report_event(hs, user, room_id, event_id, {"reason": "spam", "score": -100})
    assert (response.status, await response.json()) == (200, {})
    stored = await rows(hs, "event_reports")
    assert [tuple(r[1:]) for r in stored] == [(room_id, event_id, "@user:test.local", "spam")]
    report_id = int(stored[0][0])

    response = await hs.client.get(f"{ADMIN}/event_reports", headers=auth(admin))
    assert response.status == 200
    listed = await response.json()
    assert listed["total"] == 1 and "next_token" not in listed
    assert listed["event_reports"] == [
        {
            "id": report_id,
            "received_ts": hs.clock.time_ms(),
            "room_id": room_id,
            "name": "Lobby",
            "event_id": event_id,
            "user_id": "@user:test.local",
            "reason": "spam",
            "score": -100,
            "sender": "@spammer:test.local",
            "canonical_alias": "#lobby:test.local",
        }
    ]
    response = await hs.client.get(f"{ADMIN}/event_reports/{report_id}", headers=auth(admin))
    detail = await response.json()
    assert detail["event_id"] == event_id and detail["reason"] == "spam"
    assert detail["event_json"]["content"] == {"msgtype": "m.text", "body": "buy now"}
    assert detail["event_json"]["sender"] == "@spammer:test.local"

    response = await hs.client.delete(f"{ADMIN}/event_reports/{report_id}", headers=auth(admin))
    assert (response.status, await response.json()) == (200, {})
    assert await rows(hs, "event_reports") == []
    for method in ("GET", "DELETE"):
        response = await hs.client.request(
            method, f"{ADMIN}/event_reports/{report_id}", headers=auth(admin)
        )
        await expect_error(response, 404, "M_NOT_FOUND")


async def test_event_reports_page_and_filter(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    other = str((await hs.register("other"))["access_token"])
    room_a = await create_room(hs, user, preset="public_chat")
    room_b = await create_room(hs, user, preset="public_chat")
    await join(hs, other, room_a)
    await join(hs, other, room_b)
    from_other = await send(hs, other, room_a, {"msgtype": "m.text", "body": "1"})
    from_user = await send(hs, user, room_b, {"msgtype": "m.text", "body": "2"})
    for token, room_id, event_id in (
        (user, room_a, from_other),
        (other, room_b, from_user),
        (user, room_b, from_user),
    ):
        hs.clock.advance(1)
        assert (await report_event(hs, token, room_id, event_id, {})).status == 200

    async def page(query: str) -> dict[str, Any]:
        response = await hs.client.get(f"{ADMIN}/event_reports{query}", headers=auth(admin))
        assert response.status == 200, await response.text()
        return dict(await response.json())

    first = await page("?limit=2")
    assert first["total"] == 3 and first["next_token"] == 2
    # newest first by default
    assert [r["event_id"] for r in first["event_reports"]] == [from_user, from_user]
    assert [r["user_id"] for r in first["event_reports"]] == [
        "@user:test.local",
        "@other:test.local",
    ]
    rest = await page("?limit=2&from=2")
    assert [r["event_id"] for r in rest["event_reports"]] == [from_other]
    assert "next_token" not in rest
    forwards = await page("?dir=f")
    assert [r["event_id"] for r in forwards["event_reports"]] == [
        from_other,
        from_user,
        from_user,
    ]
    by_reporter = await page("?user_id=@other:test.local")
    assert by_reporter["total"] == 1
    assert by_reporter["event_reports"][0]["room_id"] == room_b
    assert (await page(f"?room_id={room_a}"))["total"] == 1
    by_sender = await page("?event_sender_user_id=@user:test.local")
    assert by_sender["total"] == 2
    assert {r["sender"] for r in by_sender["event_reports"]} == {"@user:test.local"}


@pytest.mark.parametrize("query", ["?from=-1", "?limit=-1", "?limit=many", "?dir=sideways"])
async def test_event_reports_list_refuses_bad_parameters(hs: HomeserverHarness, query: str) -> None:
    admin, _ = await admin_and_user(hs)
    response = await hs.client.get(f"{ADMIN}/event_reports{query}", headers=auth(admin))
    await expect_error(response, 400, "M_INVALID_PARAM")


async def test_event_report_ids_must_be_numbers(hs: HomeserverHarness) -> None:
    admin, _ = await admin_and_user(hs)
    for method in ("GET", "DELETE"):
        for report_id in ("abc", "-1", "1.5", str(2**63)):
            response = await hs.client.request(
                method, f"{ADMIN}/event_reports/{report_id}", headers=auth(admin)
            )
            await expect_error(response, 400, "M_INVALID_PARAM")


async def test_event_report_needs_an_event_the_reporter_can_see(hs: HomeserverHarness) -> None:
    _, user = await admin_and_user(hs)
    outsider = str((await hs.register("outsider"))["access_token"])
    room_id = await create_room(hs, user)  # private: invite only, history shared
    event_id = await send(hs, user, room_id, {"msgtype": "m.text", "body": "secret"})
    response = await report_event(hs, outsider, room_id, event_id, {"reason": "?"})
    await expect_error(response, 404, "M_NOT_FOUND")
    response = await report_event(hs, user, room_id, "$unknown", {"reason": "?"})
    await expect_error(response, 404, "M_NOT_FOUND")
    other_room = await create_room(hs, user)
    response = await report_event(hs, user, other_room, event_id, {"reason": "?"})
    await expect_error(response, 404, "M_NOT_FOUND")
    redacted = await send(hs, user, room_id, {"msgtype": "m.text", "body": "oops"})
    response = await hs.client.post(
        f"{CLIENT}/rooms/{room_id}/redact/{redacted}", json={}, headers=auth(user)
    )
    assert response.status == 200
    response = await report_event(hs, user, room_id, redacted, {"reason": "gone"})
    await expect_error(response, 404, "M_NOT_FOUND")
    assert await rows(hs, "event_reports") == []


@pytest.mark.parametrize(
    "body", [{"reason": 5}, {"reason": "x", "score": "bad"}, {"score": 1.5}, {"score": True}]
)
async def test_event_report_refuses_bad_bodies(hs: HomeserverHarness, body: Any) -> None:
    _, user = await admin_and_user(hs)
    room_id = await create_room(hs, user)
    event_id = await send(hs, user, room_id, {"msgtype": "m.text", "body": "hi"})
    response = await report_event(hs, user, room_id, event_id, body)
    await expect_error(response, 400, "M_BAD_JSON")
    assert await rows(hs, "event_reports") == []


async def test_room_report(hs: HomeserverHarness) -> None:
    _, user = await admin_and_user(hs)
    reporter = str((await hs.register("reporter"))["access_token"])
    room_id = await create_room(hs, user)
    response = await hs.client.post(
        f"{CLIENT}/rooms/{room_id}/report", json={"reason": "bad room"}, headers=auth(reporter)
    )
    assert (response.status, await response.json()) == (200, {})
    assert [tuple(r[1:]) for r in await rows(hs, "room_reports")] == [
        (room_id, "@reporter:test.local", "bad room")
    ]
    response = await hs.client.post(
        f"{CLIENT}/rooms/!nope:test.local/report", json={"reason": "x"}, headers=auth(reporter)
    )
    await expect_error(response, 404, "M_NOT_FOUND")
    response = await hs.client.post(
        f"{CLIENT}/rooms/{room_id}/report", json={"reason": 3}, headers=auth(reporter)
    )
    await expect_error(response, 400, "M_BAD_JSON")
    response = await hs.client.post(
        f"{CLIENT}/rooms/{room_id}/report", json={}, headers=auth(reporter)
    )
    await expect_error(response, 400, "M_MISSING_PARAM")
    assert len(await rows(hs, "room_reports")) == 1


async def test_user_report(hs: HomeserverHarness) -> None:
    _, user = await admin_and_user(hs)
    await hs.register("target")

    async def report(target: str, body: Any) -> Any:
        return await hs.client.post(
            f"{CLIENT}/users/{target}/report", json=body, headers=auth(user)
        )

    response = await report("@target:test.local", {"reason": "rude"})
    assert (response.status, await response.json()) == (200, {})
    # unknown local and remote users: accepted, not stored (nothing to act on)
    assert (await report("@ghost:test.local", {"reason": "x"})).status == 200
    assert (await report("@someone:remote.example", {"reason": "x"})).status == 200
    await expect_error(await report("target", {"reason": "x"}), 400, "M_INVALID_PARAM")
    await expect_error(
        await report("@target:test.local", {"reason": "x" * 1001}), 400, "M_BAD_JSON"
    )
    await expect_error(await report("@target:test.local", {}), 400, "M_MISSING_PARAM")
    assert [tuple(r[1:]) for r in await rows(hs, "user_reports")] == [
        ("@target:test.local", "@user:test.local", "rude")
    ]


async def test_reporting_needs_a_token(hs: HomeserverHarness) -> None:
    _, user = await admin_and_user(hs)
    room_id = await create_room(hs, user)
    event_id = await send(hs, user, room_id, {"msgtype": "m.text", "body": "hi"})
    for path in (
        f"{CLIENT}/rooms/{room_id}/report/{event_id}",
        f"{CLIENT}/rooms/{room_id}/report",
        f"{CLIENT}/users/@user:test.local/report",
    ):
        response = await hs.client.post(path, json={"reason": "x"})
        await expect_error(response, 401, "M_MISSING_TOKEN")


async def test_event_reports_admin_needs_an_admin(hs: HomeserverHarness) -> None:
    _, user = await admin_and_user(hs)
    room_id = await create_room(hs, user)
    event_id = await send(hs, user, room_id, {"msgtype": "m.text", "body": "hi"})
    assert (await report_event(hs, user, room_id, event_id, {"reason": "r"})).status == 200
    report_id = (await rows(hs, "event_reports"))[0][0]
    for method, path in (
        ("GET", f"{ADMIN}/event_reports"),
        ("GET", f"{ADMIN}/event_reports/{report_id}"),
        ("DELETE", f"{ADMIN}/event_reports/{report_id}"),
    ):
        await check_admin_only(hs, user, method, path)
    assert len(await rows(hs, "event_reports")) == 1


async def test_user_reports_are_listed_read_and_deleted(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    other = str((await hs.register("other"))["access_token"])
    await hs.register("target")
    for token, target, reason in (
        (user, "@target:test.local", "first"),
        (other, "@target:test.local", "second"),
        (user, "@other:test.local", "third"),
    ):
        hs.clock.advance(1)
        response = await hs.client.post(
            f"{CLIENT}/users/{target}/report", json={"reason": reason}, headers=auth(token)
        )
        assert response.status == 200

    async def page(query: str) -> dict[str, Any]:
        response = await hs.client.get(f"{ADMIN}/user_reports{query}", headers=auth(admin))
        assert response.status == 200, await response.text()
        return dict(await response.json())

    listed = await page("?limit=2")
    assert listed["total"] == 3 and listed["next_token"] == 2
    assert [r["reason"] for r in listed["user_reports"]] == ["third", "second"]
    assert [r["reason"] for r in (await page("?dir=f"))["user_reports"]] == [
        "first",
        "second",
        "third",
    ]
    by_target = await page("?target_user_id=@target:test.local")
    assert by_target["total"] == 2
    by_reporter = await page("?user_id=@other:test.local")
    [entry] = by_reporter["user_reports"]
    assert entry == {
        "id": entry["id"],
        "received_ts": entry["received_ts"],
        "target_user_id": "@target:test.local",
        "user_id": "@other:test.local",
        "reason": "second",
    }
    response = await hs.client.get(f"{ADMIN}/user_reports/{entry['id']}", headers=auth(admin))
    assert await response.json() == entry
    await check_admin_only(hs, user, "GET", f"{ADMIN}/user_reports")
    await check_admin_only(hs, user, "GET", f"{ADMIN}/user_reports/{entry['id']}")
    await check_admin_only(hs, user, "DELETE", f"{ADMIN}/user_reports/{entry['id']}")
    assert len(await rows(hs, "user_reports")) == 3
    response = await hs.client.delete(f"{ADMIN}/user_reports/{entry['id']}", headers=auth(admin))
    assert (response.status, await response.json()) == (200, {})
    assert [r[3] for r in await rows(hs, "user_reports")] == ["first", "third"]
    response = await hs.client.get(f"{ADMIN}/user_reports/{entry['id']}", headers=auth(admin))
    await expect_error(response, 404, "M_NOT_FOUND")
    response = await hs.client.get(f"{ADMIN}/user_reports/x", headers=auth(admin))
    await expect_error(response, 400, "M_INVALID_PARAM")
    response = await hs.client.get(f"{ADMIN}/user_reports?dir=z", headers=auth(admin))
    await expect_error(response, 400, "M_INVALID_PARAM")


async def test_reports_are_rate_limited(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(rc_reports={"per_second": 0.1, "burst_count": 2})
    _, user = await admin_and_user(hs)
    room_id = await create_room(hs, user)
    body = {"reason": "again"}
    for _ in range(2):
        response = await hs.client.post(
            f"{CLIENT}/rooms/{room_id}/report", json=body, headers=auth(user)
        )
        assert response.status == 200
    response = await hs.client.post(
        f"{CLIENT}/users/@admin:test.local/report", json=body, headers=auth(user)
    )
    await expect_error(response, 429, "M_LIMIT_EXCEEDED")
    hs.clock.advance(10)
    response = await hs.client.post(
        f"{CLIENT}/users/@admin:test.local/report", json=body, headers=auth(user)
    )
    assert response.status == 200
    assert len(await rows(hs, "room_reports")) == 2
    assert len(await rows(hs, "user_reports")) == 1
