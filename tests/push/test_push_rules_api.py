"""Push rules API: reading, creating, ordering, enabling, actions, and every error."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import make_user

G = "/pushrules/global"


async def test_get_ruleset_has_defaults(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    body = await alice.request("GET", "/pushrules/")
    rules = body["global"]
    assert set(rules) == {"override", "content", "room", "sender", "underride"}
    assert rules["override"][0]["rule_id"] == ".m.rule.master"
    mention = next(r for r in rules["override"] if r["rule_id"] == ".m.rule.is_user_mention")
    assert mention["conditions"][0]["value"] == alice.user_id
    assert mention["default"] is True and mention["enabled"] is True
    assert (await alice.request("GET", f"{G}/")) == rules
    one = await alice.request("GET", f"{G}/override/.m.rule.master")
    assert one["enabled"] is False and one["default"] is True


async def test_requires_auth(hs: HomeserverHarness) -> None:
    resp = await hs.client.get("/_matrix/client/v3/pushrules/")
    assert resp.status == 401
    assert (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_create_order_update_delete(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.request("PUT", f"{G}/content/cake", {"pattern": "cake", "actions": ["notify"]})
    await alice.request(
        "PUT", f"{G}/content/nocake?before=cake", {"pattern": "cake*lie", "actions": []}
    )
    await alice.request(
        "PUT", f"{G}/content/last?after=cake", {"pattern": "pie", "actions": ["notify"]}
    )
    await alice.request("PUT", f"{G}/content/first", {"pattern": "tea", "actions": ["notify"]})
    content = (await alice.request("GET", f"{G}/"))["content"]
    assert [r["rule_id"] for r in content] == [
        "first",
        "nocake",
        "cake",
        "last",
        ".m.rule.contains_user_name",  # the (legacy) server-default content rule
    ]
    rule = await alice.request("GET", f"{G}/content/nocake")
    assert rule == {
        "rule_id": "nocake",
        "default": False,
        "enabled": True,
        "actions": [],
        "pattern": "cake*lie",
    }
    # updating keeps the place (and the enabled flag)
    await alice.request("PUT", f"{G}/content/cake/enabled", {"enabled": False})
    await alice.request("PUT", f"{G}/content/cake", {"pattern": "cakes", "actions": ["notify"]})
    content = (await alice.request("GET", f"{G}/"))["content"]
    assert [r["rule_id"] for r in content] == [
        "first",
        "nocake",
        "cake",
        "last",
        ".m.rule.contains_user_name",  # the (legacy) server-default content rule
    ]
    assert content[2]["pattern"] == "cakes" and content[2]["enabled"] is False
    await alice.request("DELETE", f"{G}/content/cake")
    await alice.request("GET", f"{G}/content/cake", expect=404)
    # overrides with conditions; room and sender rules
    override = {
        "conditions": [
            {"kind": "event_match", "key": "content.body", "pattern": "beer"},
            {"kind": "room_member_count", "is": "<=10"},
        ],
        "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}],
    }
    await alice.request("PUT", f"{G}/override/beer", override)
    rules = (await alice.request("GET", f"{G}/"))["override"]
    assert [r["rule_id"] for r in rules][:2] == [".m.rule.master", "beer"]
    assert rules[1]["conditions"] == override["conditions"]
    room = quote("!dj234r78wl45Gh4D:matrix.org", safe="")
    await alice.request("PUT", f"{G}/room/{room}", {"actions": []})
    sender = quote("@spambot:matrix.org", safe="")
    await alice.request("PUT", f"{G}/sender/{sender}", {"actions": ["dont_notify"]})
    got = await alice.request("GET", f"{G}/sender/{sender}")
    # legacy actions are kept as set (evaluation ignores them)
    assert got["actions"] == ["dont_notify"] and "conditions" not in got
    # another user sees none of it
    bob = await make_user(hs, "bob")
    await bob.request("GET", f"{G}/override/beer", expect=404)


async def test_enabled_and_actions_of_default_rules(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    path = f"{G}/underride/.m.rule.message"
    assert await alice.request("GET", f"{path}/enabled") == {"enabled": True}
    await alice.request("PUT", f"{path}/enabled", {"enabled": False})
    assert await alice.request("GET", f"{path}/enabled") == {"enabled": False}
    await alice.request(
        "PUT", f"{path}/actions", {"actions": ["notify", {"set_tweak": "highlight"}]}
    )
    assert await alice.request("GET", f"{path}/actions") == {
        "actions": ["notify", {"set_tweak": "highlight"}]
    }
    rule = await alice.request("GET", path)
    assert rule["enabled"] is False and rule["default"] is True
    await alice.request("PUT", f"{G}/override/.m.rule.master/enabled", {"enabled": True})
    assert (await alice.request("GET", f"{G}/override/.m.rule.master"))["enabled"] is True


async def _error(alice: Any, method: str, path: str, body: Any, status: int, errcode: str) -> None:
    data = await alice.request(method, path, body, expect=status)
    assert data["errcode"] == errcode, data


async def test_errors(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.request("PUT", f"{G}/content/cake", {"pattern": "cake", "actions": ["notify"]})
    before = await alice.request("GET", f"{G}/")
    cases: list[tuple[str, str, Any, int, str]] = [
        ("GET", f"{G}/content/nope", None, 404, "M_NOT_FOUND"),
        ("GET", f"{G}/underride/.m.rule.master", None, 404, "M_NOT_FOUND"),
        ("GET", f"{G}/bogus/cake", None, 400, "M_UNRECOGNIZED"),
        ("DELETE", f"{G}/content/nope", None, 404, "M_NOT_FOUND"),
        ("DELETE", f"{G}/override/.m.rule.master", None, 404, "M_NOT_FOUND"),
        ("PUT", f"{G}/override/.mine", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{G}/override/a%5Cb", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{G}/override/x", {}, 400, "M_MISSING_PARAM"),
        ("PUT", f"{G}/override/x", {"actions": "notify"}, 400, "M_BAD_JSON"),
        ("PUT", f"{G}/override/x", {"actions": ["explode"]}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{G}/override/x", {"actions": [{"value": 1}]}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{G}/override/x", {"actions": [], "conditions": {}}, 400, "M_BAD_JSON"),
        (
            "PUT",
            f"{G}/override/x",
            {"actions": [], "conditions": [{"key": "a"}]},
            400,
            "M_BAD_JSON",
        ),
        (
            "PUT",
            f"{G}/override/x",
            {"actions": [], "conditions": [{"kind": "event_match", "key": "type"}]},
            400,
            "M_INVALID_PARAM",
        ),
        ("PUT", f"{G}/content/x", {"actions": []}, 400, "M_MISSING_PARAM"),
        ("PUT", f"{G}/content/x", {"actions": [], "pattern": 3}, 400, "M_BAD_JSON"),
        (
            "PUT",
            f"{G}/content/x?before=nope",
            {"actions": [], "pattern": "x"},
            400,
            "M_INVALID_PARAM",
        ),
        (
            "PUT",
            f"{G}/content/x?after=.m.rule.contains_user_name",
            {"actions": [], "pattern": "x"},
            400,
            "M_INVALID_PARAM",
        ),
        ("PUT", f"{G}/content/cake/enabled", {}, 400, "M_MISSING_PARAM"),
        ("PUT", f"{G}/content/cake/enabled", {"enabled": "yes"}, 400, "M_BAD_JSON"),
        ("PUT", f"{G}/content/nope/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
        ("PUT", f"{G}/override/.m.rule.nope/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
        ("PUT", f"{G}/content/cake/actions", {}, 400, "M_MISSING_PARAM"),
        ("PUT", f"{G}/content/nope/actions", {"actions": []}, 404, "M_NOT_FOUND"),
        ("GET", f"{G}/content/nope/actions", None, 404, "M_NOT_FOUND"),
        ("GET", f"{G}/content/nope/enabled", None, 404, "M_NOT_FOUND"),
    ]
    for method, path, body, status, errcode in cases:
        await _error(alice, method, path, body, status, errcode)
    resp = await hs.client.put(
        f"/_matrix/client/v3{G}/override/x", data=b"{not json", headers=alice.auth
    )
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    assert await alice.request("GET", f"{G}/") == before


async def test_rules_of_one_kind(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.request("PUT", f"{G}/room/%23a:example.com", {"actions": ["notify"]})
    await alice.request("PUT", f"{G}/room/%23b:example.com", {"actions": ["notify"]})
    rooms = await alice.request("GET", f"{G}/room/")
    assert [r["rule_id"] for r in rooms] == ["#b:example.com", "#a:example.com"]
    assert rooms == (await alice.request("GET", f"{G}/"))["room"]
    underride = await alice.request("GET", f"{G}/underride/")
    assert ".m.rule.message" in [r["rule_id"] for r in underride]
    # any attribute of a rule can be read on its own
    await alice.request("PUT", f"{G}/content/cake", {"pattern": "cake*", "actions": []})
    assert await alice.request("GET", f"{G}/content/cake/pattern") == {"pattern": "cake*"}
    assert await alice.request("GET", f"{G}/content/cake/default") == {"default": False}


async def test_trailing_slash_after_rule_id_names_the_rule(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.request("PUT", f"{G}/room/%23a:example.com/", {"actions": ["notify"]})
    assert (await alice.request("GET", f"{G}/room/%23a:example.com"))["enabled"] is True
    await alice.request("DELETE", f"{G}/room/%23a:example.com/")
    await alice.request("GET", f"{G}/room/%23a:example.com", expect=404)


async def test_legacy_actions_are_shown_as_set(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.request(
        "PUT", f"{G}/underride/.m.rule.message/actions", {"actions": ["dont_notify"]}
    )
    assert await alice.request("GET", f"{G}/underride/.m.rule.message/actions") == {
        "actions": ["dont_notify"]
    }
    await alice.request("PUT", f"{G}/sender/%40bob:example.com", {"actions": ["notify"]})
    await alice.request(
        "PUT", f"{G}/sender/%40bob:example.com/actions", {"actions": ["coalesce", "notify"]}
    )
    assert await alice.request("GET", f"{G}/sender/%40bob:example.com/actions") == {
        "actions": ["coalesce", "notify"]
    }


async def test_paths_that_name_nothing(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    await alice.request("PUT", f"{G}/content/cake", {"pattern": "cake", "actions": ["notify"]})
    before = await alice.request("GET", "/pushrules/")
    unrecognized: list[tuple[str, str, Any]] = [
        ("GET", "/pushrules/global", None),
        ("GET", "/pushrules/global/room", None),
        ("GET", "/pushrules/not_a_scope/", None),
        ("GET", "/pushrules/not_a_scope", None),
        ("GET", "/pushrules/device/room/x", None),
        ("GET", f"{G}/not_a_template/", None),
        ("GET", f"{G}/not_a_template/x", None),
        ("GET", f"{G}/override/.m.rule.master/not_an_attr", None),
        ("GET", f"{G}/override/.m.rule.master/", None),
        ("GET", f"{G}/override/.m.rule.master/enabled/more", None),
        ("PUT", "/pushrules/", {"actions": ["notify"]}),
        ("PUT", "/pushrules/not_a_scope/room/%23spam:example.com", {"actions": ["notify"]}),
        ("PUT", "/pushrules/global", {"actions": ["notify"]}),
        ("PUT", "/pushrules/global/", {"actions": ["notify"]}),
        ("PUT", f"{G}/room", {"actions": ["notify"]}),
        ("PUT", f"{G}/room/", {"actions": ["notify"]}),
        ("PUT", f"{G}//x", {"actions": ["notify"]}),
        ("PUT", f"{G}/not_a_template/foo", {"actions": ["notify"]}),
        ("PUT", f"{G}/override/.m.rule.master/not_an_attr", {"enabled": True}),
        ("PUT", f"{G}/content/cake/enabled/more", {"enabled": True}),
        ("DELETE", "/pushrules/", None),
        ("DELETE", "/pushrules/global/", None),
        ("DELETE", f"{G}/content", None),
        ("DELETE", f"{G}/content/", None),
        ("DELETE", f"{G}/not_a_template/cake", None),
        ("DELETE", f"{G}/content/cake/enabled", None),
        ("DELETE", "/pushrules/not_a_scope/content/cake", None),
    ]
    for method, path, body in unrecognized:
        await _error(alice, method, path, body, 400, "M_UNRECOGNIZED")
    # without its trailing slash /pushrules is not the tree at all
    await _error(alice, "GET", "/pushrules", None, 404, "M_UNRECOGNIZED")
    # a rule that does not exist is not found, whatever attribute is asked for
    await _error(alice, "GET", f"{G}/override/not_a_rule_id", None, 404, "M_NOT_FOUND")
    await _error(alice, "GET", f"{G}/override/not_a_rule_id/enabled", None, 404, "M_NOT_FOUND")
    # an encoded slash stays inside its segment: part of the rule ID, which refuses it
    await _error(alice, "PUT", f"{G}/room/a%2Fb", {"actions": []}, 400, "M_INVALID_PARAM")
    await _error(alice, "PUT", f"{G}/room/a%5Cb", {"actions": []}, 400, "M_INVALID_PARAM")
    await _error(alice, "GET", f"{G}/room/a%2Fb", None, 404, "M_NOT_FOUND")
    # every case left the rules as they were
    assert await alice.request("GET", "/pushrules/") == before


async def test_bad_paths_need_a_token_first(hs: HomeserverHarness) -> None:
    for method in ("GET", "PUT", "DELETE"):
        resp = await hs.client.request(method, "/_matrix/client/v3/pushrules/not_a_scope/")
        assert resp.status == 401, method
        assert (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_legacy_mention_rules_only_when_configured(
    make_homeserver: HarnessFactory,
) -> None:
    spec = await make_homeserver(push={"legacy_mention_rules": False})
    alice = await make_user(spec, "alice")
    await _error(alice, "GET", f"{G}/content/.m.rule.contains_user_name", None, 404, "M_NOT_FOUND")
    await _error(
        alice,
        "PUT",
        f"{G}/override/.m.rule.roomnotif/enabled",
        {"enabled": False},
        404,
        "M_NOT_FOUND",
    )
    legacy = await make_homeserver(push={"legacy_mention_rules": True})
    bob = await make_user(legacy, "bob")
    content = await bob.request("GET", f"{G}/content/")
    assert [(r["rule_id"], r["pattern"]) for r in content] == [
        (".m.rule.contains_user_name", "bob")
    ]
    await bob.request("PUT", f"{G}/content/.m.rule.contains_user_name/enabled", {"enabled": False})
    rule = await bob.request("GET", f"{G}/content/.m.rule.contains_user_name")
    assert rule["enabled"] is False and rule["default"] is True
    await _error(bob, "DELETE", f"{G}/override/.m.rule.roomnotif", None, 404, "M_NOT_FOUND")
    assert (await bob.request("GET", f"{G}/override/.m.rule.roomnotif"))["enabled"] is True
