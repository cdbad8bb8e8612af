"""``redaction_retention_period``: a redacted event's original JSON stays stored for
the period (clients see the pruned form all along), then is erased for good; null
keeps it forever. Driven by the FakeClock."""

from __future__ import annotations

import json
from typing import Any

from storage.database import Database
from storage.migrations import apply_migrations
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import make_user

DAY_S = 86_400


async def _stored_content(hs: HomeserverHarness, event_id: str) -> dict[str, Any]:
    raw = await hs.server.db.fetchval("t", "SELECT json FROM events WHERE event_id = $1", event_id)
    return dict(json.loads(raw)["content"])


async def _pending(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM redactions_to_censor"))


async def test_redacted_content_is_erased_after_the_period(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(redaction_retention_period=2 * DAY_S * 1000)
    censor = hs.server.redaction_censor
    assert censor is not None
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    secret = await alice.send(room_id, "my secret")
    kept = await alice.send(room_id, "not redacted")
    await alice.request("PUT", f"/rooms/{room_id}/redact/{secret}/txn1", {"reason": "oops"})
    # clients see the pruned form at once; the original stays stored for the period
    served = await alice.request("GET", f"/rooms/{room_id}/event/{secret}")
    assert served["content"] == {}
    assert (await _stored_content(hs, secret))["body"] == "my secret"
    hs.clock.advance(DAY_S)
    assert await censor.tick() == 0
    assert (await _stored_content(hs, secret))["body"] == "my secret"
    hs.clock.advance(DAY_S + 1)
    assert await censor.tick() == 1
    assert await _stored_content(hs, secret) == {}
    assert await _pending(hs) == 0
    assert (await _stored_content(hs, kept))["body"] == "not redacted"
    # the censored event is still served, redacted, with its redaction
    served = await alice.request("GET", f"/rooms/{room_id}/event/{secret}")
    assert served["content"] == {}
    assert served["unsigned"]["redacted_because"]["content"]["reason"] == "oops"
    # a second redaction of the same event queues nothing more
    await alice.request("PUT", f"/rooms/{room_id}/redact/{secret}/txn2", {})
    assert await censor.tick() == 0


async def test_null_keeps_redacted_content(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(redaction_retention_period=None)
    assert hs.server.redaction_censor is None
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    secret = await alice.send(room_id, "kept for admins")
    await alice.request("PUT", f"/rooms/{room_id}/redact/{secret}/txn1", {})
    hs.clock.advance(365 * DAY_S)
    assert (await _stored_content(hs, secret))["body"] == "kept for admins"


async def test_a_week_by_default(hs: HomeserverHarness) -> None:
    censor = hs.server.redaction_censor
    assert censor is not None
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    secret = await alice.send(room_id, "gone in a week")
    await alice.request("PUT", f"/rooms/{room_id}/redact/{secret}/txn1", {})
    hs.clock.advance(7 * DAY_S - 60)
    await censor.tick()
    assert (await _stored_content(hs, secret))["body"] == "gone in a week"
    hs.clock.advance(120)
    await censor.tick()
    assert await _stored_content(hs, secret) == {}


async def test_migration_queues_events_redacted_before_it(database: Database) -> None:
    async with database.transaction("back_to_0039") as txn:
        await txn.execute("DROP TABLE redactions_to_censor")
        await txn.execute("DELETE FROM schema_version WHERE version = 40")
        for event_id, redacted_by, received in (
            ("$target", "$redaction", 1000),
            ("$redaction", None, 5000),
            ("$plain", None, 2000),
        ):
            await txn.execute(
                "INSERT INTO events (event_id, room_id, stream_ordering, depth, type,"
                " sender, origin_server_ts, received_ts, json, redacted_by)"
                " VALUES ($1, '!r:test', $2, 1, 'm.room.message', '@a:test', 0, $2, '{}', $3)",
                event_id,
                received,
                redacted_by,
            )
    assert await apply_migrations(database) >= 40
    rows = await database.fetchall("t", "SELECT event_id, redacted_ts FROM redactions_to_censor")
    # due from when the redaction arrived
    assert [tuple(r) for r in rows] == [("$target", 5000)]
