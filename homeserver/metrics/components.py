"""The metrics of each instrumented part, under Synapse's names.

Each part of the server that is measured holds one of these (a default instance
that nobody scrapes until `HomeserverMetrics` registers it): the database
(`TransactionMetrics`), the event persister (`EventMetrics`), the federation
sender and transaction handler (`FederationMetrics`), the pushers (`PushMetrics`),
the caches (`CacheMetrics`) and named blocks of background work (`BlockMetrics`).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from homeserver.metrics.families import CounterFamily, Family, GaugeFamily, HistogramFamily
from storage.cache_stats import CacheStats

# The calling thread's usage where the platform has it (Linux), else the process's.
_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class TransactionMetrics:
    """Database transactions by name (``desc``): how many, and their total time
    (Synapse's ``synapse_storage_transaction_time_count`` / ``_sum``, both counters).
    `observe` is the Database's ``transaction_observer``."""

    def __init__(self) -> None:
        self.count = CounterFamily(
            "synapse_storage_transaction_time_count", "Database transactions, by name", ("desc",)
        )
        self.duration = CounterFamily(
            "synapse_storage_transaction_time_sum",
            "Seconds spent in database transactions, by name",
            ("desc",),
        )

    def families(self) -> tuple[Family, ...]:
        return (self.count, self.duration)

    def observe(self, name: str, seconds: float) -> None:
        key = (name,)
        counts, durations = self.count.values, self.duration.values
        counts[key] = counts.get(key, 0) + 1
        durations[key] = durations.get(key, 0.0) + seconds


class EventMetrics:
    """Events persisted: all, and by type and origin (local or the remote server)."""

    def __init__(self, server_name: str) -> None:
        self._local_suffix = ":" + server_name
        self.persisted = CounterFamily(
            "synapse_storage_events_persisted_events", "Events persisted"
        )
        self.persisted_by_origin = CounterFamily(
            "synapse_storage_events_persisted_events_sep",
            "Events persisted, by type and origin",
            ("type", "origin_type", "origin_entity"),
        )

    def families(self) -> tuple[Family, ...]:
        return (self.persisted, self.persisted_by_origin)

    def on_persisted(self, event_type: str, sender: str) -> None:
        self.persisted.inc()
        if sender.endswith(self._local_suffix):
            key = (event_type, "local", "*client*")
        else:
            key = (event_type, "remote", sender.partition(":")[2])
        self.persisted_by_origin.inc(key)


class FederationMetrics:
    """Federation transactions out (and their PDUs and EDUs), in, and the queue."""

    def __init__(self, blocks: BlockMetrics | None = None) -> None:
        self.blocks = blocks or BlockMetrics()
        self.sent_transactions = CounterFamily(
            "synapse_federation_client_sent_transactions", "Transactions sent successfully"
        )
        self.sent_pdu_destinations_count = CounterFamily(
            "synapse_federation_client_sent_pdu_destinations_count",
            "PDUs queued for sending to one or more destinations",
        )
        self.sent_pdu_destinations = CounterFamily(
            "synapse_federation_client_sent_pdu_destinations",
            "PDUs queued for sending, counted once per destination",
        )
        self.sent_edus = CounterFamily("synapse_federation_client_sent_edus", "EDUs sent")
        self.sent_edus_by_type = CounterFamily(
            "synapse_federation_client_sent_edus_by_type", "EDUs sent, by type", ("type",)
        )
        self.received_transactions = CounterFamily(
            "synapse_federation_server_received_transactions",
            "Transactions received (new ones, not retransmissions)",
        )
        self.received_pdus = CounterFamily(
            "synapse_federation_server_received_pdus", "PDUs received in transactions"
        )
        self.received_edus = CounterFamily(
            "synapse_federation_server_received_edus", "EDUs received in transactions"
        )
        # destination -> (queued PDUs, queued EDUs), as of the last scrape
        self.backlog: dict[str, tuple[int, int]] = {}
        self.pending_pdus = GaugeFamily(
            "synapse_federation_transaction_queue_pending_pdus",
            "PDUs waiting to be sent, all destinations",
            (),
            lambda: [((), sum(p for p, _ in self.backlog.values()))],
        )
        self.pending_edus = GaugeFamily(
            "synapse_federation_transaction_queue_pending_edus",
            "EDUs waiting to be sent, all destinations",
            (),
            lambda: [((), sum(e for _, e in self.backlog.values()))],
        )
        self.pending_destinations = GaugeFamily(
            "synapse_federation_transaction_queue_pending_destinations",
            "Destinations with something waiting to be sent",
            (),
            lambda: [((), len(self.backlog))],
        )
        self.destination_pending_pdus = GaugeFamily(
            "synapse_federation_destination_queue_pending_pdus",
            "PDUs waiting to be sent, by destination (destinations with a backlog only)",
            ("destination",),
            lambda: [((d,), p) for d, (p, _) in sorted(self.backlog.items())],
        )
        self.destination_pending_edus = GaugeFamily(
            "synapse_federation_destination_queue_pending_edus",
            "EDUs waiting to be sent, by destination (destinations with a backlog only)",
            ("destination",),
            lambda: [((d,), e) for d, (_, e) in sorted(self.backlog.items())],
        )
        self.read_backlog: Callable[[], Awaitable[dict[str, tuple[int, int]]]] | None = None

    def families(self) -> tuple[Family, ...]:
        return (
            self.sent_transactions,
            self.sent_pdu_destinations_count,
            self.sent_pdu_destinations,
            self.sent_edus,
            self.sent_edus_by_type,
            self.received_transactions,
            self.received_pdus,
            self.received_edus,
            self.pending_pdus,
            self.pending_edus,
            self.pending_destinations,
            self.destination_pending_pdus,
            self.destination_pending_edus,
        )

    async def refresh(self) -> None:
        """Read the outbound queue's size per destination (before a scrape)."""
        if self.read_backlog is not None:
            self.backlog = await self.read_backlog()

    def pdu_queued(self, destinations: int) -> None:
        self.sent_pdu_destinations_count.inc()
        self.sent_pdu_destinations.inc((), destinations)

    def transaction_sent(self, edu_types: list[str]) -> None:
        self.sent_transactions.inc()
        if edu_types:
            self.sent_edus.inc((), len(edu_types))
            for edu_type in edu_types:
                self.sent_edus_by_type.inc((edu_type,))

    def transaction_received(self, pdus: int, edus: int) -> None:
        self.received_transactions.inc()
        self.received_pdus.inc((), pdus)
        self.received_edus.inc((), edus)


class PushMetrics:
    """Pushes to push gateways (notifications and badge-only updates)."""

    def __init__(self) -> None:
        self.pushes_processed = CounterFamily(
            "synapse_http_httppusher_http_pushes_processed", "Notifications pushed"
        )
        self.pushes_failed = CounterFamily(
            "synapse_http_httppusher_http_pushes_failed", "Notifications whose push failed"
        )
        self.badge_updates_processed = CounterFamily(
            "synapse_http_httppusher_badge_updates_processed", "Badge updates pushed"
        )
        self.badge_updates_failed = CounterFamily(
            "synapse_http_httppusher_badge_updates_failed", "Badge updates whose push failed"
        )
        # (kind, app_id) -> running pushers; set by the pusher pool
        self.count_pushers: Callable[[], dict[tuple[str, str], int]] = dict
        self.pushers = GaugeFamily(
            "synapse_pushers",
            "Running pushers, by kind and app",
            ("kind", "app_id"),
            lambda: list(self.count_pushers().items()),
        )

    def families(self) -> tuple[Family, ...]:
        return (
            self.pushes_processed,
            self.pushes_failed,
            self.badge_updates_processed,
            self.badge_updates_failed,
            self.pushers,
        )


class CacheMetrics:
    """The in-memory caches: lookups, hits, size and evictions, by cache name
    (Synapse's ``synapse_util_caches_cache*``, gauges of running totals as there)."""

    def __init__(self) -> None:
        self.caches: list[CacheStats] = []
        self._families: tuple[Family, ...] = (
            GaugeFamily(
                "synapse_util_caches_cache",
                "Cache lookups",
                ("name",),
                lambda: [((c.name,), c.hits + c.misses) for c in self.caches],
            ),
            GaugeFamily(
                "synapse_util_caches_cache_hits",
                "Cache lookups that found the entry",
                ("name",),
                lambda: [((c.name,), c.hits) for c in self.caches],
            ),
            GaugeFamily(
                "synapse_util_caches_cache_size",
                "Entries in the cache",
                ("name",),
                lambda: [((c.name,), c.size()) for c in self.caches],
            ),
            GaugeFamily(
                "synapse_util_caches_cache_max_size",
                "Most entries the cache holds",
                ("name",),
                lambda: [((c.name,), c.max_size) for c in self.caches],
            ),
            GaugeFamily(
                "synapse_util_caches_cache_evicted_size",
                "Entries evicted from the cache, by reason",
                ("name", "reason"),
                lambda: [((c.name, "size"), c.evictions) for c in self.caches],
            ),
        )

    def families(self) -> tuple[Family, ...]:
        return self._families

    def add(self, *stats: CacheStats) -> None:
        self.caches.extend(stats)


class BlockMetrics:
    """Named blocks of background work (Synapse's ``synapse_util_metrics_block_*``):
    how often each ran, its wall-clock time and the user and system CPU time of the
    event loop's thread meanwhile (which includes other tasks that ran while the
    block awaited: an upper bound of the block's own CPU)."""

    def __init__(self) -> None:
        labels = ("block_name",)
        self.count = CounterFamily("synapse_util_metrics_block_count", "Blocks run", labels)
        self.time = CounterFamily(
            "synapse_util_metrics_block_time_seconds", "Wall-clock seconds in blocks", labels
        )
        self.ru_utime = CounterFamily(
            "synapse_util_metrics_block_ru_utime_seconds",
            "User CPU seconds of the event loop's thread during blocks",
            labels,
        )
        self.ru_stime = CounterFamily(
            "synapse_util_metrics_block_ru_stime_seconds",
            "System CPU seconds of the event loop's thread during blocks",
            labels,
        )

        # Series from the start, at 0: Synapse's dashboard lists the server names to
        # choose from with label_values(synapse_util_metrics_block_ru_utime_seconds_total,
        # server_name), which must find this server before it first federates.
        for family in self.families():
            family.inc(("_send_new_transaction",), 0)

    def families(self) -> tuple[CounterFamily, ...]:
        return (self.count, self.time, self.ru_utime, self.ru_stime)

    @contextmanager
    def measure(self, block_name: str) -> Iterator[None]:
        key = (block_name,)
        wall, usage = time.perf_counter(), resource.getrusage(_RUSAGE_THREAD)
        try:
            yield
        finally:
            after = resource.getrusage(_RUSAGE_THREAD)
            self.count.inc(key)
            self.time.inc(key, time.perf_counter() - wall)
            self.ru_utime.inc(key, max(after.ru_utime - usage.ru_utime, 0.0))
            self.ru_stime.inc(key, max(after.ru_stime - usage.ru_stime, 0.0))


GC_TIME_BUCKETS: Final = (
    0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 15.0, 30.0, 45.0, 60.0,
)  # fmt: skip


class GcMetrics:
    """The scheduled garbage collections (`homeserver.garbage.manager`), as Synapse's
    ``python_gc_time`` (seconds per collection, by generation) and
    ``python_gc_unreachable_total`` (unreachable objects the last one found)."""

    def __init__(self) -> None:
        self.time = HistogramFamily(
            "python_gc_time", "Time taken to GC (sec)", ("gen",), GC_TIME_BUCKETS
        )
        self._unreachable: dict[int, int] = {}
        self.unreachable = GaugeFamily(
            "python_gc_unreachable_total",
            "Unreachable GC objects",
            ("gen",),
            lambda: [((str(gen),), count) for gen, count in sorted(self._unreachable.items())],
        )

    def observe(self, generation: int, seconds: float, unreachable: int) -> None:
        self.time.observe((str(generation),), seconds)
        self._unreachable[generation] = unreachable

    def families(self) -> tuple[Family, ...]:
        return (self.time, self.unreachable)


def families_of(*parts: Any) -> list[Family]:
    return [family for part in parts for family in part.families()]
