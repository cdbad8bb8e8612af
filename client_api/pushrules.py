"""Push rules (client-server API: Push Rules: API, pushrules.yaml).

Every path under ``/pushrules/`` reaches one handler per method, which splits the
path into scope / kind / rule ID / attribute (``RulePath``) and calls the spec
operation it names. Paths that name nothing (no or an unknown scope, kind or
attribute, a missing rule ID, ``/pushrules/global`` without its trailing slash)
are 400 M_UNRECOGNIZED, as Synapse answers them; ``GET /pushrules`` without the
slash is not under the tree at all (404). ``GET /pushrules/global/{kind}/`` lists
the rules of one kind, as Synapse serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import Unrecognized
from homeserver.http.body import get_bool, json_object

SCOPE = "global"
ATTRIBUTES = ("enabled", "actions")
PREFIX = "/pushrules/"
TRAILING_SLASH = "Unrecognised request: you probably wanted a trailing slash"


@dataclass(frozen=True, slots=True)
class RulePath:
    """What a path under ``/pushrules/`` names. ``kind`` is None for the ruleset
    of a scope, ``rule_id`` None for the rules of a kind, ``attr`` None for a rule."""

    kind: str | None = None
    rule_id: str | None = None
    attr: str | None = None


def split_rule_path(raw_path: str) -> list[str]:
    """The segments after ``/pushrules/``, each percent-decoded on its own (so an
    encoded ``/`` stays inside its segment, and is refused as part of a rule ID)."""
    tail = raw_path[raw_path.index(PREFIX) + len(PREFIX) :]
    return [unquote(segment) for segment in tail.split("/")]


def parse_read_path(segments: list[str]) -> RulePath | None:
    """The target of a GET; None for the whole tree (``/pushrules/``)."""
    if segments == [""]:
        return None
    if segments[0] != SCOPE:
        raise Unrecognized(f"Unknown push rule scope: {segments[0]}", status=400)
    if len(segments) == 1:
        raise Unrecognized(TRAILING_SLASH, status=400)
    if segments[1] == "" and len(segments) == 2:
        return RulePath()
    kind = segments[1]
    if len(segments) == 2:
        raise Unrecognized(TRAILING_SLASH, status=400)
    if segments[2] == "" and len(segments) == 3:
        return RulePath(kind)
    if len(segments) == 3:
        return RulePath(kind, segments[2])
    if len(segments) == 4:
        return RulePath(kind, segments[2], segments[3])
    raise Unrecognized(status=400)


def parse_rule_path(segments: list[str]) -> RulePath:
    """The rule (and maybe attribute) a PUT or DELETE names: scope, kind and a
    non-empty rule ID are required; a trailing slash after the rule ID is allowed."""
    if segments[0] != SCOPE:
        raise Unrecognized(f"Unknown push rule scope: {segments[0]}", status=400)
    if len(segments) < 3 or not segments[1] or not segments[2]:
        raise Unrecognized("A push rule path needs a kind and a rule ID", status=400)
    if len(segments) == 3 or (len(segments) == 4 and segments[3] == ""):
        return RulePath(segments[1], segments[2])
    if len(segments) == 4:
        if segments[3] not in ATTRIBUTES:
            raise Unrecognized(f"Unknown push rule attribute: {segments[3]}", status=400)
        return RulePath(segments[1], segments[2], segments[3])
    raise Unrecognized(status=400)


class PushRuleHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        self._rules = ctx.push.rules

    # -- the tree: one handler per method ------------------------------------------------

    async def get(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/{path}: getPushRules, getPushRulesGlobal,
        the rules of one kind, getPushRule, isPushRuleEnabled, getPushRuleActions."""
        requester = await self._ctx.requester(request)
        target = parse_read_path(split_rule_path(request.rel_url.raw_path))
        user_id = requester.user_id
        if target is None:
            return json_response(await self._rules.account_data_content(user_id))
        if target.kind is None:
            return json_response(await self._rules.ruleset(user_id))
        if target.rule_id is None:
            return json_response(await self._rules.rules_of_kind(user_id, target.kind))
        rule = await self._rules.get_rule(user_id, target.kind, target.rule_id)
        if target.attr is None:
            return json_response(rule)
        if target.attr not in rule:
            raise Unrecognized(f"Unknown push rule attribute: {target.attr}", status=400)
        return json_response({target.attr: rule[target.attr]})

    async def put(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/{path}: setPushRule, setPushRuleEnabled,
        setPushRuleActions."""
        requester = await self._ctx.requester(request)
        target = parse_rule_path(split_rule_path(request.rel_url.raw_path))
        assert target.kind is not None and target.rule_id is not None
        body = await json_object(request)
        if target.attr == "enabled":
            enabled = get_bool(body, "enabled")
            await self._rules.set_enabled(requester.user_id, target.kind, target.rule_id, enabled)
        elif target.attr == "actions":
            await self._rules.set_actions(
                requester.user_id, target.kind, target.rule_id, body.get("actions")
            )
        else:
            await self._rules.set_rule(
                requester.user_id,
                target.kind,
                target.rule_id,
                body,
                before=request.query.get("before"),
                after=request.query.get("after"),
            )
        return json_response({})

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId} (deletePushRule)."""
        requester = await self._ctx.requester(request)
        target = parse_rule_path(split_rule_path(request.rel_url.raw_path))
        if target.attr is not None:
            raise Unrecognized("An attribute of a push rule cannot be deleted", status=400)
        assert target.kind is not None and target.rule_id is not None
        await self._rules.delete_rule(requester.user_id, target.kind, target.rule_id)
        return json_response({})
