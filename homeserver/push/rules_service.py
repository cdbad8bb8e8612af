"""Reading and changing a user's push rules (client-server API: Push Rules: API).

Compiled rulesets are cached per user (bounded) and dropped whenever the user changes
a rule; users who changed nothing share the compiled default ruleset.

With workers one process writes push rules (``stream_writers.push_rules``): each
change takes a position of the push-rules stream (held in memory; the ruleset itself
reaches /sync as ``m.push_rules`` account data) and is published with its user; the
other processes drop that user's compiled rules and wake them (``apply_replicated``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from homeserver.errors import NotFound
from homeserver.notifier import Notifier
from homeserver.push.default_rules import SPEC_DEFAULTS, DefaultRules
from homeserver.push.rules import (
    CompiledRuleset,
    check_kind,
    check_new_rule_id,
    compile_ruleset,
    find_rule_json,
    parse_actions,
    parse_rule_body,
    place_rule,
    ruleset_json,
)
from homeserver.replication.ephemeral import StreamRole, StreamSource
from homeserver.replication.invalidation import PUSH_RULES_CACHE, CachePublisher
from homeserver.replication.notices import PUSH_RULES, NoticePublisher, UserStreamNotice
from homeserver.streams import StreamIdGenerator
from storage.push_rule_records import UserRule
from storage.push_rules import PushRuleStore

RULE_NOT_FOUND = "The push rule was not found."


class PushRulesService:
    def __init__(
        self,
        store: PushRuleStore,
        notifier: Notifier,
        cache_size: int = 20_000,
        defaults: DefaultRules = SPEC_DEFAULTS,
        stream: StreamSource | None = None,
        *,
        cache_publisher: CachePublisher | None = None,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        writer: str | None = None,
    ) -> None:
        self._store = store
        self._stream = stream if stream is not None else StreamIdGenerator(0)
        self._role = StreamRole.of(PUSH_RULES, publisher, instance_name, writer)
        # tells the other processes whose compiled rules are stale
        self._cache_publisher = cache_publisher or CachePublisher()
        self._notifier = notifier
        self._defaults = defaults
        self._compiled: OrderedDict[str, CompiledRuleset] = OrderedDict()
        self._epoch = 0  # moves on each change, so a read racing one is not cached
        self._cache_size = cache_size
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # told of each user whose rules changed (after the change is stored)
        self.changed_listeners: list[Callable[[str], Awaitable[None]]] = []

    # -- evaluation side -----------------------------------------------------------------

    async def compiled_for_users(self, user_ids: Collection[str]) -> dict[str, CompiledRuleset]:
        """Each user's compiled ruleset (one query for every user not cached)."""
        result: dict[str, CompiledRuleset] = {}
        missing: list[str] = []
        for user_id in user_ids:
            cached = self._compiled.get(user_id)
            if cached is None:
                missing.append(user_id)
            else:
                self._compiled.move_to_end(user_id)
                result[user_id] = cached
        if missing:
            epoch = self._epoch
            for user_id, stored in (await self._store.get_rules_for_users(missing)).items():
                compiled = compile_ruleset(stored, self._defaults)
                result[user_id] = compiled
                if self._epoch == epoch:  # no rules changed while we read
                    self._compiled[user_id] = compiled
            while len(self._compiled) > self._cache_size:
                self._compiled.popitem(last=False)
        return result

    def invalidate_user(self, user_id: str) -> None:
        """The user's rules changed (here or in another process): recompile them on
        the next use."""
        self._compiled.pop(user_id, None)
        self._epoch += 1

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: recompile every
        user's rules on their next use."""
        self._compiled.clear()
        self._epoch += 1

    async def _changed(self, user_id: str) -> None:
        self.invalidate_user(user_id)
        self._cache_publisher.stale(PUSH_RULES_CACHE, [user_id])
        if self._role.publishes:
            stream = self._stream
            assert isinstance(stream, StreamIdGenerator)  # check_writes passed
            position = stream.allocate()
            try:
                self._role.users_changed(position, (user_id,))
            finally:
                stream.finish(position)
        # m.push_rules is account data: the listeners give the change its position in
        # the account-data stream (the next /sync carries the ruleset); wake long-polls.
        for listener in self.changed_listeners:
            await listener(user_id)
        self._notifier.on_user_change(user_id)

    # -- API side -------------------------------------------------------------------------

    async def ruleset(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """The ``global`` ruleset (also the content of the ``m.push_rules`` account data)."""
        return ruleset_json(user_id, await self._store.get_rules(user_id), self._defaults)

    async def account_data_content(self, user_id: str) -> dict[str, Any]:
        """The content of the user's ``m.push_rules`` account data: the global scope,
        as GET /pushrules/ gives it (push.md, "Push Rules: Events")."""
        return {"global": await self.ruleset(user_id)}

    async def rules_of_kind(self, user_id: str, kind: str) -> list[dict[str, Any]]:
        """The rules of one kind, in evaluation order (``GET /pushrules/global/{kind}/``)."""
        check_kind(kind)
        return (await self.ruleset(user_id))[kind]

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        check_kind(kind)
        stored = await self._store.get_rules(user_id)
        rule = find_rule_json(user_id, stored, kind, rule_id, self._defaults)
        if rule is None:
            raise NotFound(RULE_NOT_FOUND)
        return rule

    async def set_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        body: Mapping[str, Any],
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        check_kind(kind)
        check_new_rule_id(kind, rule_id)
        new = parse_rule_body(kind, rule_id, body)
        self._role.check_writes()
        async with self._locks[user_id]:
            stored = await self._store.get_rules(user_id)
            placed = place_rule(stored.rules, new, before=before, after=after)
            await self._store.replace_kind(user_id, kind, placed)
            await self._changed(user_id)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        """Server-default rules cannot be deleted: like any rule the user did not
        define, they are M_NOT_FOUND here."""
        check_kind(kind)
        self._role.check_writes()
        async with self._locks[user_id]:
            if not await self._store.delete_rule(user_id, kind, rule_id):
                raise NotFound(RULE_NOT_FOUND)
            await self._changed(user_id)

    async def copy_room_rules(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """A room upgrade: each enabled rule of the user that names the old room (its
        room rule; a rule with a ``room_id`` condition on it) again for the new room,
        first of its kind as any new rule (push.md: servers copy a user's settings to
        the replacement room; Synapse copies these rules)."""
        self._role.check_writes()
        async with self._locks[user_id]:
            stored = await self._store.get_rules(user_id)
            copies = [
                c
                for c in (_for_room(r, old_room_id, new_room_id) for r in stored.rules)
                if c is not None
            ]
            if not copies:
                return
            rules = list(stored.rules)
            for kind in dict.fromkeys(c.kind for c in copies):
                for copy in (c for c in copies if c.kind == kind):
                    placed = place_rule(rules, copy, before=None, after=None)
                    rules = [r for r in rules if r.kind != kind] + placed
                await self._store.replace_kind(user_id, kind, [r for r in rules if r.kind == kind])
            await self._changed(user_id)

    async def get_enabled(self, user_id: str, kind: str, rule_id: str) -> bool:
        return bool((await self.get_rule(user_id, kind, rule_id))["enabled"])

    async def get_actions(self, user_id: str, kind: str, rule_id: str) -> list[Any]:
        return list((await self.get_rule(user_id, kind, rule_id))["actions"])

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        check_kind(kind)
        self._role.check_writes()
        async with self._locks[user_id]:
            if self._is_default(kind, rule_id):
                await self._store.set_default_enabled(user_id, rule_id, enabled)
            elif not await self._store.set_user_rule_enabled(user_id, kind, rule_id, enabled):
                raise NotFound(RULE_NOT_FOUND)
            await self._changed(user_id)

    async def set_actions(self, user_id: str, kind: str, rule_id: str, raw: object) -> None:
        check_kind(kind)
        actions = parse_actions(raw)
        self._role.check_writes()
        async with self._locks[user_id]:
            if self._is_default(kind, rule_id):
                await self._store.set_default_actions(user_id, rule_id, actions)
            elif not await self._store.set_user_rule_actions(user_id, kind, rule_id, actions):
                raise NotFound(RULE_NOT_FOUND)
            await self._changed(user_id)

    # -- replication ------------------------------------------------------------------

    def apply_replicated(self, notice: UserStreamNotice) -> None:
        """The push-rules writer changed the rules of ``notice.users`` (readers only)."""
        if self._role.writes:
            return
        for user_id in notice.users:
            self.invalidate_user(user_id)
            self._notifier.on_user_change(user_id)

    def _is_default(self, kind: str, rule_id: str) -> bool:
        entry = self._defaults.by_id.get(rule_id)
        if entry is not None and entry[0] == kind:
            return True
        if rule_id.startswith("."):
            raise NotFound(RULE_NOT_FOUND)
        return False


def _for_room(rule: UserRule, old_room_id: str, new_room_id: str) -> UserRule | None:
    """``rule`` made for the new room, if it is an enabled rule naming the old one."""
    if not rule.enabled:
        return None
    if rule.kind == "room":
        return replace(rule, rule_id=new_room_id) if rule.rule_id == old_room_id else None
    conditions = rule.conditions or []
    if not any(_names_room(c, old_room_id) for c in conditions):
        return None
    rule_id = (
        rule.rule_id.replace(old_room_id, new_room_id)
        if old_room_id in rule.rule_id
        else new_room_id
    )
    return replace(
        rule,
        rule_id=rule_id,
        conditions=[
            {**c, "pattern": new_room_id} if _names_room(c, old_room_id) else c for c in conditions
        ],
    )


def _names_room(condition: Any, room_id: str) -> bool:
    return (
        isinstance(condition, dict)
        and condition.get("key") == "room_id"
        and condition.get("pattern") == room_id
    )
