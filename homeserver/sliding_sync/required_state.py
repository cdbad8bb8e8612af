"""Which state events a room's ``required_state`` asks for (MSC4186).

PURE. A request is a list of ``[event type, state key]`` pairs, ORed together:
``"*"`` as a state key means every key of the type; ``"*"`` as the type means all
state (as Synapse serves it: any entry with a wildcard type asks for everything);
``["m.room.member", "$LAZY"]`` asks for the members of the timeline's senders (and
targets); ``"$ME"`` is the requesting user. Several lists and a subscription asking
for one room are combined with ``union``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from homeserver.sliding_sync.request import LAZY, ME, WILDCARD

MEMBER = "m.room.member"
StateKey = tuple[str, str]


@dataclass(frozen=True)
class RequiredState:
    """The normalised form: every state event wanted (``everything``), or the types
    wanted whole, the exact keys, and whether members are lazily loaded."""

    everything: bool = False
    whole_types: frozenset[str] = frozenset()
    keys: frozenset[StateKey] = frozenset()
    lazy_members: bool = False
    # the explicit pairs as asked (to tell a widened request from the same one)
    pairs: frozenset[StateKey] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]], user_id: str) -> RequiredState:
        everything = False
        whole: set[str] = set()
        keys: set[StateKey] = set()
        lazy = False
        asked = set()
        for event_type, state_key in pairs:
            asked.add((event_type, state_key))
            if event_type == WILDCARD:
                everything = True
            elif state_key == WILDCARD:
                whole.add(event_type)
            elif event_type == MEMBER and state_key == LAZY:
                lazy = True
            else:
                keys.add((event_type, user_id if state_key == ME else state_key))
        return cls(everything, frozenset(whole), frozenset(keys), lazy, frozenset(asked))

    def union(self, other: RequiredState) -> RequiredState:
        return RequiredState(
            self.everything or other.everything,
            self.whole_types | other.whole_types,
            self.keys | other.keys,
            self.lazy_members or other.lazy_members,
            self.pairs | other.pairs,
        )

    @property
    def is_empty(self) -> bool:
        return not (self.everything or self.whole_types or self.keys or self.lazy_members)

    def wants(self, key: StateKey, lazy_users: frozenset[str] | set[str] = frozenset()) -> bool:
        """Whether the state event at ``key`` is asked for; ``lazy_users``: the members
        lazy loading brings in (the timeline's senders and targets)."""
        if self.everything:
            return True
        event_type, state_key = key
        if event_type in self.whole_types or key in self.keys:
            return True
        return self.lazy_members and event_type == MEMBER and state_key in lazy_users

    def select(
        self, state_keys: Iterable[StateKey], lazy_users: frozenset[str] | set[str] = frozenset()
    ) -> list[StateKey]:
        return [key for key in state_keys if self.wants(key, lazy_users)]

    def widened_from(self, before: RequiredState) -> RequiredState | None:
        """What this asks for that ``before`` did not (None when nothing more): a
        connection that widens a room's request gets the newly asked state at once."""
        if self.everything and not before.everything:
            return self
        if before.everything:
            return None
        whole = self.whole_types - before.whole_types
        keys = frozenset(k for k in self.keys - before.keys if k[0] not in before.whole_types)
        lazy = self.lazy_members and not before.lazy_members
        if not whole and not keys and not lazy:
            return None
        return RequiredState(False, whole, keys, lazy, self.pairs)


def lazy_users_of(events: Iterable[tuple[str, str, str | None]]) -> set[str]:
    """The users lazy loading brings in for timeline events given as (type, sender,
    state_key): every sender, and the target of each membership event."""
    users: set[str] = set()
    for event_type, sender, state_key in events:
        users.add(sender)
        if event_type == MEMBER and state_key is not None:
            users.add(state_key)
    return users
