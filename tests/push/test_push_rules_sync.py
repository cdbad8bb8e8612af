"""m.push_rules in /sync's account_data (push.md, "Push Rules: Events"): the whole
ruleset in the initial sync and in the next sync after each change; GET account_data
answers it too (account_data.md: server-managed types are readable as normal)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.ephemeral.support import long_poll, settle
from tests.rooms.helpers import User, make_user


def push_rules_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    events = body.get("account_data", {}).get("events", [])
    return [e["content"] for e in events if e["type"] == "m.push_rules"]


def rule_ids(content: dict[str, Any], kind: str) -> list[str]:
    return [r["rule_id"] for r in content["global"][kind]]


async def rules(user: User) -> dict[str, Any]:
    return dict(await user.request("GET", "/pushrules/"))


async def test_initial_sync_carries_the_ruleset(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    body = await alice.sync()
    [content] = push_rules_of(body)
    assert content == await rules(alice)
    assert ".m.rule.master" in rule_ids(content, "override")
    # nothing changed: an incremental sync has no m.push_rules
    assert push_rules_of(await alice.sync(since=body["next_batch"])) == []


async def test_each_change_is_in_the_next_sync(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    since = (await alice.sync())["next_batch"]
    await alice.request(
        "PUT", "/pushrules/global/content/coffee", {"pattern": "coffee", "actions": ["notify"]}
    )
    body = await alice.sync(since=since)
    [content] = push_rules_of(body)
    assert content == await rules(alice)
    assert "coffee" in rule_ids(content, "content")
    since = body["next_batch"]
    assert push_rules_of(await alice.sync(since=since)) == []
    # disabling a default rule, changing actions, deleting: each one is a change
    await alice.request(
        "PUT", "/pushrules/global/override/.m.rule.master/enabled", {"enabled": True}
    )
    body = await alice.sync(since=since)
    [content] = push_rules_of(body)
    [master] = [r for r in content["global"]["override"] if r["rule_id"] == ".m.rule.master"]
    assert master["enabled"] is True
    since = body["next_batch"]
    await alice.request("PUT", "/pushrules/global/content/coffee/actions", {"actions": []})
    await alice.request("DELETE", "/pushrules/global/content/coffee")
    body = await alice.sync(since=since)
    [content] = push_rules_of(body)  # once, however many changes
    assert "coffee" not in rule_ids(content, "content")
    assert content == await rules(alice)
    # the initial sync has the current ruleset, once
    [content] = push_rules_of(await alice.sync())
    assert content == await rules(alice)
    # another user's changes are not alice's
    bob = await make_user(hs, "bob")
    since = body["next_batch"]
    await bob.request("PUT", "/pushrules/global/sender/%40x%3Ay", {"actions": []})
    assert push_rules_of(await alice.sync(since=since)) == []


async def test_a_change_wakes_the_long_poll(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    since = (await alice.sync())["next_batch"]
    poll = long_poll(alice, since)
    await settle()
    await alice.request("PUT", "/pushrules/global/room/!r%3Ay", {"actions": []})
    body = await asyncio.wait_for(poll, 5)
    [content] = push_rules_of(body)
    assert "!r:y" in rule_ids(content, "room")


async def test_get_account_data_answers_push_rules(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    path = f"/user/{quote(alice.user_id)}/account_data/m.push_rules"
    assert await alice.request("GET", path) == await rules(alice)
    await alice.request("PUT", "/pushrules/global/sender/%40x%3Ay", {"actions": []})
    assert await alice.request("GET", path) == await rules(alice)
    # still the server's to manage
    err = await alice.request("PUT", path, {"global": {}}, expect=405)
    assert err["errcode"] == "M_BAD_JSON"


async def test_filters_and_restarts(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    alice = await make_user(hs, "alice")
    no_rules = json.dumps({"account_data": {"not_types": ["m.push_rules"]}})
    assert push_rules_of(await alice.sync(filter=no_rules)) == []
    since = (await alice.sync())["next_batch"]
    await alice.request("PUT", "/pushrules/global/sender/%40x%3Ay", {"actions": []})
    await hs.client.close()
    # the change's position is stored: a token from before the restart still gets it
    alice.hs = await make_homeserver()
    [content] = push_rules_of(await alice.sync(since=since))
    assert "@x:y" in rule_ids(content, "sender")
