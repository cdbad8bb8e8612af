"""`CacheStats`: what an in-memory cache counts for the metrics.

A cache (a bounded dict or OrderedDict in a store or a service) holds one and adds
to it on each lookup and eviction; plain integer additions, cheap enough for the
hottest caches. The metrics (homeserver/metrics) read them when scraped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class CacheStats:
    name: str  # Synapse's name for the cache where it has one
    size: Callable[[], int]  # entries held now
    max_size: int
    hits: int = 0
    misses: int = 0
    evictions: int = 0
