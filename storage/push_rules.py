"""Users' push rules and their changes to server-default rules."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from storage.database import Database, Transaction
from storage.push_rule_records import DefaultRuleOverride, UserPushRules, UserRule

_KIND_ORDER = "CASE kind WHEN 'override' THEN 0 WHEN 'content' THEN 1 WHEN 'room' THEN 2 WHEN 'sender' THEN 3 ELSE 4 END"
_CHUNK = 200


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class PushRuleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_rules(self, user_id: str) -> UserPushRules:
        return (await self.get_rules_for_users([user_id]))[user_id]

    async def get_rules_for_users(self, user_ids: Collection[str]) -> dict[str, UserPushRules]:
        """Every listed user's stored rules (users who changed nothing get empty rules)."""
        users = list(dict.fromkeys(user_ids))
        rules: dict[str, list[UserRule]] = defaultdict(list)
        overrides: dict[str, dict[str, DefaultRuleOverride]] = defaultdict(dict)
        for start in range(0, len(users), _CHUNK):
            chunk = users[start : start + _CHUNK]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            async with self.db.transaction("get_push_rules", readonly=True) as txn:
                rows = await txn.fetchall(
                    "SELECT user_id, kind, rule_id, conditions, pattern, actions, enabled"
                    f" FROM push_rules WHERE user_id IN ({marks})"
                    f" ORDER BY user_id, {_KIND_ORDER}, position",
                    *chunk,
                )
                default_rows = await txn.fetchall(
                    "SELECT user_id, rule_id, enabled, actions FROM push_rule_defaults"
                    f" WHERE user_id IN ({marks})",
                    *chunk,
                )
            for user_id, kind, rule_id, conditions, pattern, actions, enabled in rows:
                rules[user_id].append(
                    UserRule(
                        kind,
                        rule_id,
                        json.loads(actions),
                        json.loads(conditions) if conditions is not None else None,
                        pattern,
                        bool(enabled),
                    )
                )
            for user_id, rule_id, enabled, actions in default_rows:
                overrides[user_id][rule_id] = DefaultRuleOverride(
                    None if enabled is None else bool(enabled),
                    json.loads(actions) if actions is not None else None,
                )
        return {
            u: UserPushRules(tuple(rules.get(u, ())), dict(overrides.get(u, {}))) for u in users
        }

    async def replace_kind(self, user_id: str, kind: str, rules: Sequence[UserRule]) -> None:
        """Store ``rules`` as the user's rules of ``kind``, in this order."""

        async def txn_func(txn: Transaction) -> None:
            await txn.execute(
                "DELETE FROM push_rules WHERE user_id = $1 AND kind = $2", user_id, kind
            )
            await txn.executemany(
                "INSERT INTO push_rules (user_id, kind, rule_id, position, conditions, pattern,"
                " actions, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [
                    (
                        user_id,
                        kind,
                        r.rule_id,
                        position,
                        _dumps(r.conditions) if r.conditions is not None else None,
                        r.pattern,
                        _dumps(r.actions),
                        r.enabled,
                    )
                    for position, r in enumerate(rules)
                ],
            )

        await self.db.run_transaction("replace_push_rules", txn_func)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> bool:
        changed = await self.db.execute(
            "delete_push_rule",
            "DELETE FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3",
            user_id,
            kind,
            rule_id,
        )
        return changed > 0

    async def set_user_rule_enabled(
        self, user_id: str, kind: str, rule_id: str, enabled: bool
    ) -> bool:
        changed = await self.db.execute(
            "set_push_rule_enabled",
            "UPDATE push_rules SET enabled = $4 WHERE user_id = $1 AND kind = $2 AND rule_id = $3",
            user_id,
            kind,
            rule_id,
            enabled,
        )
        return changed > 0

    async def set_user_rule_actions(
        self, user_id: str, kind: str, rule_id: str, actions: list[Any]
    ) -> bool:
        changed = await self.db.execute(
            "set_push_rule_actions",
            "UPDATE push_rules SET actions = $4 WHERE user_id = $1 AND kind = $2 AND rule_id = $3",
            user_id,
            kind,
            rule_id,
            _dumps(actions),
        )
        return changed > 0

    async def set_default_enabled(self, user_id: str, rule_id: str, enabled: bool) -> None:
        await self.db.execute(
            "set_default_push_rule_enabled",
            "INSERT INTO push_rule_defaults (user_id, rule_id, enabled) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id, rule_id) DO UPDATE SET enabled = excluded.enabled",
            user_id,
            rule_id,
            enabled,
        )

    async def set_default_actions(self, user_id: str, rule_id: str, actions: list[Any]) -> None:
        await self.db.execute(
            "set_default_push_rule_actions",
            "INSERT INTO push_rule_defaults (user_id, rule_id, actions) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id, rule_id) DO UPDATE SET actions = excluded.actions",
            user_id,
            rule_id,
            _dumps(actions),
        )
