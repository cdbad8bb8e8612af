"""Message retention policies (``retention``, MSC1763's ``m.room.retention``): expired
messages vanish from every client endpoint at once and are deleted by the purge
jobs; state and each room's latest event stay. Driven by the FakeClock: the tests
run the jobs' ticks themselves."""

from __future__ import annotations

from typing import Any

from homeserver.retention.purge_jobs import RetentionPurgeJobs
from tests.admin.rooms.helpers import (
    CLIENT,
    auth,
    count_rows,
    create_room,
    join,
    make_user,
    q,
    send_text,
)
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.retention.helpers import (
    DAY_MS,
    DAY_S,
    get_status,
    message_ids,
    messages_types,
    send_texts,
    set_policy,
    stored,
    sync,
    timeline_ids,
)


def _jobs(hs: HomeserverHarness) -> RetentionPurgeJobs:
    jobs = hs.server.retention_purge_jobs
    assert jobs is not None
    return jobs


async def test_expired_messages_vanish_at_once_then_the_job_deletes_them(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(retention={"enabled": True})
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await create_room(hs, alice, name="Short-lived", preset="public_chat")
    await join(hs, bob, room)
    await set_policy(hs, alice, room, max_lifetime=DAY_MS)
    old = await send_texts(hs, alice, room, "one", "two", "three")
    _, since = await sync(hs, bob)
    assert await message_ids(hs, bob, room) == old[::-1]

    hs.clock.advance(DAY_S / 2)
    topic = await hs.client.put(
        f"{CLIENT}/rooms/{q(room)}/state/m.room.topic/",
        json={"topic": "still here"},
        headers=auth(alice),
    )
    assert topic.status == 200
    recent = await send_text(hs, bob, room, "recent")
    hs.clock.advance(DAY_S * 0.75)  # the first three are 1.25 days old, "recent" 0.75

    # hidden from every endpoint before any purge ran
    assert await message_ids(hs, alice, room) == [recent]
    assert {"m.room.create", "m.room.member", "m.room.name"} <= await messages_types(
        hs, alice, room
    )
    body, _ = await sync(hs, alice)
    assert old[0] not in timeline_ids(body, room) and recent in timeline_ids(body, room)
    # an incremental sync from before them neither
    body, _ = await sync(hs, bob, since)
    assert timeline_ids(body, room)[-1] == recent
    assert not set(old) & set(timeline_ids(body, room))
    assert await get_status(hs, alice, f"/rooms/{q(room)}/event/{q(old[0])}") == 404
    assert await get_status(hs, alice, f"/rooms/{q(room)}/context/{q(old[1])}") == 404
    context = await hs.client.get(
        f"{CLIENT}/rooms/{q(room)}/context/{q(recent)}?limit=10", headers=auth(alice)
    )
    assert context.status == 200
    around = await context.json()
    shown = {e["event_id"] for e in around["events_before"] + around["events_after"]}
    assert not shown & set(old)
    # still in the database until the job runs
    assert await stored(hs, old) == old

    run = await _jobs(hs).jobs[0].tick()
    assert run.deleted == {room: 3}
    assert await stored(hs, old) == []
    assert await stored(hs, [recent]) == [recent]
    # state stays: the rows, and the room's current state
    assert await count_rows(hs, "events", "room_id = $1 AND state_key IS NOT NULL", room) >= 6
    state = await hs.client.get(f"{CLIENT}/rooms/{q(room)}/state", headers=auth(bob))
    types = {e["type"] for e in await state.json()}
    assert {"m.room.create", "m.room.name", "m.room.topic", "m.room.retention"} <= types
    assert await message_ids(hs, alice, room) == [recent]
    # the room goes on
    later = await send_text(hs, alice, room, "later")
    assert await message_ids(hs, bob, room) == [later, recent]


async def test_the_latest_event_is_never_deleted(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(retention={"enabled": True})
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    await set_policy(hs, alice, room, max_lifetime=DAY_MS)
    sent = await send_texts(hs, alice, room, "a", "b", "c")
    hs.clock.advance(3 * DAY_S)
    run = await _jobs(hs).jobs[0].tick()
    assert run.deleted == {room: 2}
    assert await stored(hs, sent) == [sent[-1]]
    # kept, but hidden from clients
    assert await message_ids(hs, alice, room) == []
    # a second run has nothing more to delete
    assert (await _jobs(hs).jobs[0].tick()).deleted == {room: 0}


async def test_rooms_without_a_policy_use_the_default_policy(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(
        retention={"enabled": True, "default_policy": {"min_lifetime": "1h", "max_lifetime": "2d"}}
    )
    alice = await make_user(hs, "alice")
    plain = await create_room(hs, alice)
    lasting = await create_room(hs, alice)
    await set_policy(hs, alice, lasting, max_lifetime=10 * DAY_MS)
    only_min = await create_room(hs, alice)
    await set_policy(hs, alice, only_min, min_lifetime=DAY_MS)  # max from the default
    plain_sent = await send_texts(hs, alice, plain, "p1", "p2")
    lasting_sent = await send_texts(hs, alice, lasting, "l1", "l2")
    min_sent = await send_texts(hs, alice, only_min, "m1", "m2")
    hs.clock.advance(DAY_S)
    assert await message_ids(hs, alice, plain) == plain_sent[::-1]
    hs.clock.advance(2 * DAY_S)
    fresh = {r: await send_text(hs, alice, r, "fresh") for r in (plain, lasting, only_min)}
    assert await message_ids(hs, alice, plain) == [fresh[plain]]
    assert await message_ids(hs, alice, only_min) == [fresh[only_min]]
    assert await message_ids(hs, alice, lasting) == [fresh[lasting], *lasting_sent[::-1]]

    run = await _jobs(hs).jobs[0].tick()
    assert run.deleted == {plain: 2, only_min: 2, lasting: 0}
    assert await stored(hs, plain_sent + min_sent) == []
    assert await stored(hs, lasting_sent) == lasting_sent


async def test_allowed_lifetimes_bound_what_the_jobs_delete(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(
        retention={"enabled": True, "allowed_lifetime_min": "3d", "allowed_lifetime_max": "5d"}
    )
    alice = await make_user(hs, "alice")
    short = await create_room(hs, alice)
    await set_policy(hs, alice, short, max_lifetime=DAY_MS)
    long = await create_room(hs, alice)
    await set_policy(hs, alice, long, max_lifetime=30 * DAY_MS)
    short_sent = await send_texts(hs, alice, short, "s1", "s2")
    long_sent = await send_texts(hs, alice, long, "l1", "l2")
    hs.clock.advance(2 * DAY_S)
    for room in (short, long):
        await send_text(hs, alice, room, "fresh")
    # one day asked, three kept: hidden (the room's own policy, as Synapse) but not deleted
    assert len(await message_ids(hs, alice, short)) == 1
    run = await _jobs(hs).jobs[0].tick()
    assert run.deleted == {short: 0, long: 0}
    assert await stored(hs, short_sent) == short_sent
    hs.clock.advance(2 * DAY_S)  # four days: past the 3d floor
    run = await _jobs(hs).jobs[0].tick()
    assert run.deleted == {short: 2, long: 0}
    hs.clock.advance(2 * DAY_S)  # six days: past the 5d ceiling of the 30d policy
    run = await _jobs(hs).jobs[0].tick()
    assert run.deleted == {short: 0, long: 2}  # short's "fresh" is its latest event
    assert await stored(hs, short_sent + long_sent) == []


async def test_each_job_handles_its_range(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(
        retention={
            "enabled": True,
            "default_policy": {"max_lifetime": "4d"},
            "purge_jobs": [
                {"longest_max_lifetime": "2d", "interval": "1h"},
                {"shortest_max_lifetime": "2d", "longest_max_lifetime": "1w", "interval": "1d"},
                {"shortest_max_lifetime": "1w", "interval": "2d"},
            ],
        }
    )
    alice = await make_user(hs, "alice")
    two_days = await create_room(hs, alice)
    await set_policy(hs, alice, two_days, max_lifetime=2 * DAY_MS)  # (, 2d]: the first
    five_days = await create_room(hs, alice)
    await set_policy(hs, alice, five_days, max_lifetime=5 * DAY_MS)
    week = await create_room(hs, alice)
    await set_policy(hs, alice, week, max_lifetime=7 * DAY_MS)  # (2d, 1w]: the second
    month = await create_room(hs, alice)
    await set_policy(hs, alice, month, max_lifetime=30 * DAY_MS)
    default = await create_room(hs, alice)  # the default 4d: the second
    jobs = _jobs(hs).jobs
    assert [j.job.interval for j in jobs] == [3_600_000, DAY_MS, 2 * DAY_MS]
    assert set(await jobs[0].rooms()) == {two_days}
    assert await jobs[1].rooms() == {
        five_days: 5 * DAY_MS,
        week: 7 * DAY_MS,
        default: 4 * DAY_MS,
    }
    assert set(await jobs[2].rooms()) == {month}

    sent = {r: await send_texts(hs, alice, r, "x", "y") for r in (two_days, five_days, default)}
    hs.clock.advance(6 * DAY_S)
    for room in sent:
        await send_text(hs, alice, room, "fresh")
    assert (await jobs[2].tick()).deleted == {month: 0}
    assert await stored(hs, sent[two_days] + sent[five_days]) == sent[two_days] + sent[five_days]
    assert (await jobs[0].tick()).deleted == {two_days: 2}
    run = await jobs[1].tick()
    assert run.deleted == {five_days: 2, week: 0, default: 2}
    assert await stored(hs, [e for events in sent.values() for e in events]) == []


async def test_a_policy_change_takes_effect_at_once(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(retention={"enabled": True})
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    await set_policy(hs, alice, room, max_lifetime=DAY_MS)
    sent = await send_texts(hs, alice, room, "a", "b")
    hs.clock.advance(2 * DAY_S)
    assert await message_ids(hs, alice, room) == []
    await set_policy(hs, alice, room, max_lifetime=10 * DAY_MS)
    assert await message_ids(hs, alice, room) == sent[::-1]
    assert set(await _jobs(hs).jobs[0].rooms()) == {room}
    await set_policy(hs, alice, room)  # no lifetime: no policy, nothing hidden or purged
    assert await _jobs(hs).jobs[0].rooms() == {}
    hs.clock.advance(20 * DAY_S)
    assert await message_ids(hs, alice, room) == sent[::-1]


BAD_POLICIES: list[tuple[dict[str, Any], str]] = [
    ({"max_lifetime": "1d"}, "max_lifetime"),
    ({"max_lifetime": True}, "max_lifetime"),
    ({"min_lifetime": "soon", "max_lifetime": 5}, "min_lifetime"),
    ({"max_lifetime": None, "min_lifetime": [1]}, "min_lifetime"),
    ({"min_lifetime": 10, "max_lifetime": 5}, "greater"),
]


async def _bad_policy_refused(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    before = await count_rows(hs, "events", "room_id = $1", room)
    for content, words in BAD_POLICIES:
        response = await hs.client.put(
            f"{CLIENT}/rooms/{q(room)}/state/m.room.retention/",
            json=content,
            headers=auth(alice),
        )
        assert response.status == 400, content
        body = await response.json()
        assert body["errcode"] == "M_BAD_JSON", content
        assert words in body["error"]
    # a retention policy is state only
    response = await hs.client.post(
        f"{CLIENT}/rooms/{q(room)}/send/m.room.retention",
        json={"max_lifetime": DAY_MS},
        headers=auth(alice),
    )
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_UNKNOWN"
    assert await count_rows(hs, "events", "room_id = $1", room) == before
    assert await get_status(hs, alice, f"/rooms/{q(room)}/state/m.room.retention/") == 404


async def test_bad_policies_are_refused_and_nothing_is_stored(
    make_homeserver: HarnessFactory,
) -> None:
    await _bad_policy_refused(await make_homeserver(retention={"enabled": True}))


async def test_bad_policies_are_refused_with_retention_off(hs: HomeserverHarness) -> None:
    await _bad_policy_refused(hs)


async def test_retention_off_hides_and_purges_nothing(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(retention={"enabled": False, "default_policy": {"max_lifetime": 1}})
    assert hs.server.retention_purge_jobs is None
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    await set_policy(hs, alice, room, max_lifetime=DAY_MS)
    sent = await send_texts(hs, alice, room, "a", "b")
    hs.clock.advance(30 * DAY_S)
    assert await message_ids(hs, alice, room) == sent[::-1]
    body, _ = await sync(hs, alice)
    assert set(sent) <= set(timeline_ids(body, room))
    assert await get_status(hs, alice, f"/rooms/{q(room)}/event/{q(sent[0])}") == 200
    assert await stored(hs, sent) == sent


async def test_a_bad_policy_in_initial_state_refuses_the_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    rooms_before = await count_rows(hs, "rooms", "TRUE")
    response = await hs.client.post(
        f"{CLIENT}/createRoom",
        json={
            "initial_state": [
                {"type": "m.room.retention", "state_key": "", "content": {"max_lifetime": "1w"}}
            ]
        },
        headers=auth(alice),
    )
    assert response.status == 400
    assert (await response.json())["errcode"] == "M_BAD_JSON"
    assert await count_rows(hs, "rooms", "TRUE") == rooms_before
    # a good one is the room's policy from the start
    response = await hs.client.post(
        f"{CLIENT}/createRoom",
        json={
            "initial_state": [
                {"type": "m.room.retention", "state_key": "", "content": {"max_lifetime": DAY_MS}}
            ]
        },
        headers=auth(alice),
    )
    assert response.status == 200
    room = (await response.json())["room_id"]
    policy = await hs.client.get(
        f"{CLIENT}/rooms/{q(room)}/state/m.room.retention/", headers=auth(alice)
    )
    assert await policy.json() == {"max_lifetime": DAY_MS}


SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def test_expired_messages_vanish_from_sliding_sync_search_and_relations(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(retention={"enabled": True})
    alice = await make_user(hs, "alice")
    room = await create_room(hs, alice)
    await set_policy(hs, alice, room, max_lifetime=DAY_MS)
    old = await send_text(hs, alice, room, "kumquat old")
    reaction = await hs.client.put(
        f"{CLIENT}/rooms/{q(room)}/send/m.reaction/r1",
        json={"m.relates_to": {"rel_type": "m.annotation", "event_id": old, "key": "+1"}},
        headers=auth(alice),
    )
    assert reaction.status == 200
    hs.clock.advance(2 * DAY_S)
    new = await send_text(hs, alice, room, "kumquat new")

    body = {"lists": {"all": {"ranges": [[0, 9]], "required_state": [], "timeline_limit": 10}}}
    response = await hs.client.post(SLIDING_SYNC, json=body, headers=auth(alice))
    assert response.status == 200, await response.text()
    timeline = [e["event_id"] for e in (await response.json())["rooms"][room]["timeline"]]
    assert new in timeline and old not in timeline

    response = await hs.client.post(
        f"{CLIENT}/search",
        json={"search_categories": {"room_events": {"search_term": "kumquat"}}},
        headers=auth(alice),
    )
    assert response.status == 200
    results = (await response.json())["search_categories"]["room_events"]["results"]
    assert [r["result"]["event_id"] for r in results] == [new]

    response = await hs.client.get(
        f"/_matrix/client/v1/rooms/{q(room)}/relations/{q(old)}", headers=auth(alice)
    )
    assert response.status == 404, await response.text()  # the expired event is not found
