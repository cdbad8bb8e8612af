"""Push rules (client-server API: Push Rules: API, pushrules.yaml)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import get_bool, json_object


class PushRuleHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        self._rules = ctx.push.rules

    async def get_push_rules(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/ (getPushRules)."""
        requester = await self._ctx.requester(request)
        return json_response({"global": await self._rules.ruleset(requester.user_id)})

    async def get_push_rules_global(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/ (getPushRulesGlobal)."""
        requester = await self._ctx.requester(request)
        return json_response(await self._rules.ruleset(requester.user_id))

    async def get_push_rule(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId} (getPushRule)."""
        requester = await self._ctx.requester(request)
        kind, rule_id = _rule_path(request)
        return json_response(await self._rules.get_rule(requester.user_id, kind, rule_id))

    async def set_push_rule(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId} (setPushRule)."""
        requester = await self._ctx.requester(request)
        kind, rule_id = _rule_path(request)
        body = await json_object(request)
        await self._rules.set_rule(
            requester.user_id,
            kind,
            rule_id,
            body,
            before=request.query.get("before"),
            after=request.query.get("after"),
        )
        return json_response({})

    async def delete_push_rule(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId} (deletePushRule)."""
        requester = await self._ctx.requester(request)
        kind, rule_id = _rule_path(request)
        await self._rules.delete_rule(requester.user_id, kind, rule_id)
        return json_response({})

    async def get_enabled(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled (isPushRuleEnabled)."""
        requester = await self._ctx.requester(request)
        kind, rule_id = _rule_path(request)
        enabled = await self._rules.get_enabled(requester.user_id, kind, rule_id)
        return json_response({"enabled": enabled})

    async def set_enabled(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled (setPushRuleEnabled)."""
        requester = await self._ctx.requester(request)
        kind, rule_id = _rule_path(request)
        body = await json_object(request)
        enabled = get_bool(body, "enabled")
        await self._rules.set_enabled(requester.user_id, kind, rule_id, enabled)
        return json_response({})

    async def get_actions(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions (getPushRuleActions)."""
        requester = await self._ctx.requester(request)
        kind, rule_id = _rule_path(request)
        actions = await self._rules.get_actions(requester.user_id, kind, rule_id)
        return json_response({"actions": actions})

    async def set_actions(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions (setPushRuleActions)."""
        requester = await self._ctx.requester(request)
        kind, rule_id = _rule_path(request)
        body = await json_object(request)
        await self._rules.set_actions(requester.user_id, kind, rule_id, body.get("actions"))
        return json_response({})


def _rule_path(request: web.Request) -> tuple[str, str]:
    return request.match_info["kind"], request.match_info["ruleId"]
