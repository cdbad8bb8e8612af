"""Migration 0026: key responses are kept per key; the response a database already
holds for a server comes along for each key stored with it."""

from __future__ import annotations

import json

from storage.database import Database
from storage.migrations import apply_migrations
from storage.server_keys import ServerKeyStore

# The table as migration 0006 made it.
OLD_TABLE = [
    "DROP TABLE server_key_responses_by_key",
    "CREATE TABLE server_key_responses (server_name TEXT NOT NULL PRIMARY KEY,"
    " valid_until_ts BIGINT NOT NULL, fetched_ts BIGINT NOT NULL,"
    " from_server TEXT NOT NULL, response_json TEXT NOT NULL)",
]
KEY_ROW = (
    "INSERT INTO server_signing_keys (server_name, key_id, verify_key, valid_until_ts,"
    " expired, fetched_ts, from_server) VALUES ($1, $2, 'a2V5', $3, $4, $5, $1)"
)


async def test_stored_responses_survive_the_migration(database: Database) -> None:
    response = {"server_name": "a.test", "verify_keys": {"ed25519:new": {"key": "a2V5"}}}
    async with database.transaction("back_to_0025") as txn:
        for statement in OLD_TABLE:
            await txn.execute(statement)
        await txn.execute("DELETE FROM schema_version WHERE version = 26")
        await txn.execute(KEY_ROW, "a.test", "ed25519:new", 5000, False, 1000)
        await txn.execute(KEY_ROW, "a.test", "ed25519:old", 800, True, 1000)
        # a key of an earlier response, no longer stored beside it
        await txn.execute(KEY_ROW, "a.test", "ed25519:gone", 700, False, 500)
        await txn.execute(
            "INSERT INTO server_key_responses (server_name, valid_until_ts, fetched_ts,"
            " from_server, response_json) VALUES ('a.test', 5000, 1000, 'a.test', $1)",
            json.dumps(response),
        )
    assert await apply_migrations(database) >= 26
    responses = await ServerKeyStore(database).get_responses("a.test")
    assert set(responses) == {"ed25519:new", "ed25519:old"}
    assert responses["ed25519:new"].response == response
    assert (responses["ed25519:old"].valid_until_ts, responses["ed25519:old"].fetched_ts) == (
        800,
        1000,
    )
