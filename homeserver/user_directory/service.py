"""The user directory: ``POST /user_directory/search`` (client-server "User
directory"), as Synapse answers it, kept current on write.

Whom a searcher finds: other users joined to a room the searcher is joined to, users
joined to a public room (join rule ``public`` or history visibility
``world_readable``) that a local user is joined to, and with ``search_all_users``
every local user; never a deactivated user. As in Synapse, searchers find themselves
only through a public room (or ``search_all_users``). The directory
(``storage/user_directory.py``) holds each user's name and the words a search matches,
written when they change:

- ``on_profile_change`` (a ``ProfileService.change_hooks`` entry): a local user's
  display name or avatar (registration writes the first row itself);
- ``on_current_state_txn`` (an EventPersister ``current_state_hooks`` entry): a
  remote user's join (the name and avatar of their membership event), and a room's
  join rule or history visibility changing whether it is public;
- ``fill`` at start-up, once: the users and rooms held before the directory existed.

Joins and leaves need no write: who shares a room is read from the current
memberships by the search itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from homeserver.appservice import AppServices
from homeserver.config import UserDirectoryConfig
from homeserver.errors import BadJson, MissingParam
from homeserver.rooms.persister import CurrentStateChange
from storage.database import Transaction
from storage.stores import Stores
from storage.user_directory import words_of

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 10
MAX_LIMIT = 50  # as Synapse caps it
_VISIBILITY_TYPES = ("m.room.join_rules", "m.room.history_visibility")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def is_public(join_rules: Mapping[str, Any] | None, history: Mapping[str, Any] | None) -> bool:
    """Whether anyone may find a room's members (Synapse's "public room")."""
    return (join_rules or {}).get("join_rule") == "public" or (history or {}).get(
        "history_visibility"
    ) == "world_readable"


def parse_search_body(body: Mapping[str, Any]) -> tuple[str, int]:
    """``search_term`` and ``limit`` of a request body (400 on bad input)."""
    if "search_term" not in body:
        raise MissingParam("Missing search_term")
    term = body["search_term"]
    if not isinstance(term, str):
        raise BadJson("search_term must be a string")
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise BadJson("limit must be an integer")
    if limit < 0:
        raise BadJson("limit must not be negative")
    return term, min(limit, MAX_LIMIT)


class UserDirectory:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        config: UserDirectoryConfig,
        appservices: AppServices | None = None,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._config = config
        self._appservices = appservices

    def _is_appservice_user(self, user_id: str) -> bool:
        """An application service's sender or a user of its namespaces: left out of
        the directory, as Synapse does (bridged users are found through the bridge)."""
        return self._appservices is not None and bool(self._appservices.interested_in_user(user_id))

    def _is_mine(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self._server_name

    # -- search --------------------------------------------------------------------

    async def search(self, searcher: str, term: str, limit: int) -> dict[str, Any]:
        whole = term.strip().lower()
        if not self._config.enabled or not whole or limit <= 0:
            return {"results": [], "limited": False}
        # more than asked: application service users found are dropped below
        wanted = limit + 1 + (limit if self._appservices else 0)
        entries = await self._stores.user_directory.search(
            searcher,
            self._server_name,
            words_of(whole),
            whole,
            limit=wanted,
            search_all_users=self._config.search_all_users,
            prefer_local_users=self._config.prefer_local_users,
            exclude_remote_users=self._config.exclude_remote_users,
            show_locked_users=self._config.show_locked_users,
        )
        entries = [
            e
            for e in entries
            if not (self._is_mine(e.user_id) and self._is_appservice_user(e.user_id))
        ]
        results = []
        for entry in entries[:limit]:
            result: dict[str, Any] = {"user_id": entry.user_id}
            if entry.display_name is not None:
                result["display_name"] = entry.display_name
            if entry.avatar_url is not None:
                result["avatar_url"] = entry.avatar_url
            results.append(result)
        return {"results": results, "limited": len(entries) > limit}

    # -- kept current ----------------------------------------------------------------

    async def on_profile_change(self, user_id: str, changed: dict[str, Any]) -> None:
        """``ProfileService.change_hooks`` entry: a local user's name or avatar."""
        await self._stores.user_directory.upsert(
            user_id,
            _text(changed.get("displayname")),
            _text(changed.get("avatar_url")),
            local=True,
        )

    async def on_current_state_txn(self, txn: Transaction, change: CurrentStateChange) -> None:
        """``current_state_hooks`` entry: remote joins and public-ness of the room."""
        old, new = change.old, change.new
        joins: list[tuple[str, str]] = []
        for key, event_id in change.changes.items():
            if key[0] != "m.room.member" or event_id is None or self._is_mine(key[1]):
                continue
            membership = change.memberships.get(event_id)
            if membership == "join":
                joins.append((key[1], event_id))
        visibility_changed = any(old.get((t, "")) != new.get((t, "")) for t in _VISIBILITY_TYPES)
        if not joins and not visibility_changed:
            return
        wanted = [e for _, e in joins]
        if visibility_changed:
            wanted += [e for t in _VISIBILITY_TYPES if (e := new.get((t, ""))) is not None]
        contents = await self._contents(change, wanted)
        if joins:
            rows = []
            for user_id, event_id in joins:
                content = contents.get(event_id)
                if content is None:
                    continue
                rows.append(
                    (
                        user_id,
                        _text(content.get("displayname")),
                        _text(content.get("avatar_url")),
                        False,
                    )
                )
            await self._stores.user_directory.upsert_many_txn(txn, rows)
        if visibility_changed:
            join_rules, history = (contents.get(new.get((t, ""), "")) for t in _VISIBILITY_TYPES)
            await self._stores.user_directory.set_public_txn(
                txn, change.room_id, is_public(join_rules, history)
            )

    async def _contents(
        self, change: CurrentStateChange, event_ids: list[str]
    ) -> dict[str, Mapping[str, Any]]:
        contents: dict[str, Mapping[str, Any]] = {}
        others = []
        for event_id in event_ids:
            if event_id == change.event.event_id:
                contents[event_id] = change.event.content
            else:
                others.append(event_id)
        if others:
            held = await self._stores.events.get_events(others)
            for event_id, stored in held.items():
                event = stored.event.redacted() if stored.redacted_by else stored.event
                contents[event_id] = event.content
        return contents

    async def fill(self, chunk: int = 500) -> None:
        """Once: the local users, remote members and public rooms held from before."""
        store = self._stores.user_directory
        if await store.is_filled():
            return
        local = [(u, _text(d), _text(a), True) for u, d, a in await store.local_profiles()]
        remote = [(u, e) for u, e in await store.joined_members() if not self._is_mine(u)]
        state = await store.visibility_state()
        remote_rows = []
        for start in range(0, len(remote), chunk):
            part = remote[start : start + chunk]
            held = await self._stores.events.get_events([e for _, e in part])
            for user_id, event_id in part:
                if (stored := held.get(event_id)) is not None:
                    content = stored.event.content
                    remote_rows.append(
                        (
                            user_id,
                            _text(content.get("displayname")),
                            _text(content.get("avatar_url")),
                            False,
                        )
                    )
        by_room: dict[str, dict[str, Mapping[str, Any]]] = {}
        for start in range(0, len(state), chunk):
            part = state[start : start + chunk]
            held = await self._stores.events.get_events([e for _, _, e in part])
            for room_id, event_type, event_id in part:
                if (stored := held.get(event_id)) is not None:
                    event = stored.event.redacted() if stored.redacted_by else stored.event
                    by_room.setdefault(room_id, {})[event_type] = event.content

        async def txn_func(txn: Transaction) -> None:
            await store.upsert_many_txn(txn, local, only_missing=True)
            await store.upsert_many_txn(txn, remote_rows, only_missing=True)
            for room_id, contents in by_room.items():
                public = is_public(*(contents.get(t) for t in _VISIBILITY_TYPES))
                if public:
                    await store.set_public_txn(txn, room_id, True)
            await store.mark_filled_txn(txn)

        await self._stores.db.run_transaction("fill_user_directory", txn_func)
        if local or remote_rows or by_room:
            logger.info(
                "user directory filled: %d local users, %d remote members, %d rooms",
                len(local),
                len(remote_rows),
                len(by_room),
            )
