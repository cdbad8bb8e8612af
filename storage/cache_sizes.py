"""How big each in-memory cache may grow (Synapse's ``caches`` section).

Every cache has a base size, its number of entries at a factor of 1.0; it holds
``base * factor`` entries, where the factor is the cache's own from
``caches.per_cache_factors`` or else ``caches.global_factor`` (0.5 by default, as
Synapse). Cache names are Synapse's where it has the same cache, and are matched as
Synapse matches them: case and characters other than letters, digits and ``_``
ignored (``*stateGroupCache*`` and ``stategroupcache`` are one name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_GLOBAL_FACTOR = 0.5

# name -> base size (entries at factor 1.0), for every cache sized through here
BASE_SIZES: Mapping[str, int] = MappingProxyType(
    {
        "*getEvent*": 20_000,  # events by ID (storage/events.py); ~3 KB each
        "state_groups": 4_000,  # resolved state groups (storage/state.py)
        "*stateGroupCache*": 20_000,  # state groups read by sync (storage/sync.py)
        "room_heroes": 20_000,  # rooms' summary heroes (storage/sync.py)
        "get_user_by_access_token": 20_000,  # access tokens (homeserver/auth.py)
        "get_push_rules_for_user": 40_000,  # compiled push rules (homeserver/push)
        "push_room_state": 1_024,  # a room's state as push evaluation needs it
        "get_unread_event_push_actions_by_room_for_user": 20_000,  # unread counts
        "history_visibility_by_state_group": 40_000,  # homeserver/rooms/visibility.py
    }
)


def canonical_cache_name(name: str) -> str:
    """Synapse's canonical form of a cache name: letters, digits and ``_``, lowercase."""
    return re.sub(r"[^A-Za-z_0-9]", "", name).lower()


@dataclass(frozen=True, slots=True)
class CacheSizes:
    global_factor: float = DEFAULT_GLOBAL_FACTOR
    # canonical cache name -> factor
    per_cache_factors: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def factor(self, name: str) -> float:
        return self.per_cache_factors.get(canonical_cache_name(name), self.global_factor)

    def size(self, name: str) -> int:
        """The most entries the cache ``name`` (one of ``BASE_SIZES``) may hold."""
        return max(1, int(BASE_SIZES[name] * self.factor(name)))
