"""Prometheus metrics of one homeserver (``enable_metrics``), under Synapse's names.

`HomeserverMetrics` owns a `CollectorRegistry` of its own (several homeservers may
run in one process), with the process, Python platform and gc collectors of
prometheus-client and the families of each instrumented part, every series labelled
with ``server_name``; ``synapse_server_name_info`` and ``synapse_build_info`` let
Synapse's Grafana dashboard join on it. `metrics_app` serves the text format at
``/_synapse/metrics`` (a listener of type ``metrics``, or the ``metrics`` resource).
"""

from __future__ import annotations

import gc
import platform
from collections.abc import Awaitable, Callable
from importlib import metadata

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from homeserver.metrics.components import (
    BlockMetrics,
    CacheMetrics,
    EventMetrics,
    FederationMetrics,
    GcMetrics,
    PushMetrics,
    TransactionMetrics,
    families_of,
)
from homeserver.metrics.families import (
    FamiliesCollector,
    GaugeFamily,
    ServerNameLabelled,
)
from homeserver.metrics.http import HttpMetrics

METRICS_PATH = "/_synapse/metrics"

__all__ = [
    "METRICS_PATH",
    "BlockMetrics",
    "CacheMetrics",
    "EventMetrics",
    "FederationMetrics",
    "GcMetrics",
    "HomeserverMetrics",
    "HttpMetrics",
    "PushMetrics",
    "TransactionMetrics",
    "metrics_app",
]


def server_version() -> str:
    try:
        return metadata.version("homeserver")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class HomeserverMetrics:
    """Every metric of one homeserver and the registry Prometheus scrapes."""

    def __init__(self, server_name: str, *, enabled: bool) -> None:
        self.server_name = server_name
        self.enabled = enabled
        self.http = HttpMetrics()
        self.database = TransactionMetrics()
        self.events = EventMetrics(server_name)
        self.blocks = BlockMetrics()
        self.federation = FederationMetrics(self.blocks)
        self.push = PushMetrics()
        self.caches = CacheMetrics()
        self.gc = GcMetrics()
        # awaited before each scrape (values that must be read from the database)
        self.refreshers: list[Callable[[], Awaitable[None]]] = [self.federation.refresh]
        self.registry = CollectorRegistry(auto_describe=False)
        for inner in (
            ProcessCollector(registry=None),
            PlatformCollector(registry=None),
            # (GCCollector registers itself somewhere: a registry nobody reads)
            GCCollector(registry=CollectorRegistry()),
        ):
            self.registry.register(ServerNameLabelled(inner, server_name))
        gc_counts = GaugeFamily(
            "python_gc_counts",
            "Objects tracked by the garbage collector, by generation",
            ("gen",),
            lambda: [((str(gen),), count) for gen, count in enumerate(gc.get_count())],
        )
        info = GaugeFamily(
            "synapse_server_name_info",
            "The server_name of this process (1), for joins with process metrics",
            (),
            lambda: [((), 1)],
        )
        build = GaugeFamily(
            "synapse_build_info",
            "Build information (1)",
            ("pythonversion", "version", "osversion"),
            lambda: [
                (
                    (
                        f"{platform.python_implementation()} {platform.python_version()}",
                        server_version(),
                        f"{platform.system()} {platform.release()}",
                    ),
                    1,
                )
            ],
        )
        self.registry.register(
            FamiliesCollector(
                server_name,
                [
                    gc_counts,
                    info,
                    build,
                    *families_of(
                        self.http,
                        self.database,
                        self.events,
                        self.federation,
                        self.push,
                        self.caches,
                        self.blocks,
                        self.gc,
                    ),
                ],
            )
        )

    async def render(self) -> bytes:
        """The Prometheus text exposition of every metric, as of now."""
        for refresh in self.refreshers:
            await refresh()
        return generate_latest(self.registry)


def metrics_app(metrics: HomeserverMetrics) -> web.Application:
    """The app of a ``type: metrics`` listener: ``/_synapse/metrics`` (and
    ``/metrics``, Prometheus' default path)."""
    app = web.Application()
    handler = metrics_handler(metrics)
    app.router.add_get(METRICS_PATH, handler)
    app.router.add_get("/metrics", handler)
    return app


def metrics_handler(
    metrics: HomeserverMetrics,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def scrape(_request: web.Request) -> web.StreamResponse:
        """GET /_synapse/metrics: the Prometheus text format."""
        body = await metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return scrape
