"""Prometheus metrics: the metrics listener scraped over HTTP and parsed with
prometheus-client's parser; Synapse's series and labels move with requests,
messages and syncs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.observability.support import Scrape, free_port, scrape
from tests.rooms.helpers import V3, make_user

SERVER = "test.local"


@dataclass
class Metered:
    hs: HomeserverHarness
    url: str

    async def scrape(self) -> Scrape:
        status, content_type, text = await scrape(self.url)
        assert status == 200, text
        assert content_type == CONTENT_TYPE_LATEST
        return Scrape.parse(text)


@pytest.fixture
async def metered(make_homeserver: HarnessFactory) -> AsyncIterator[Metered]:
    """A homeserver with enable_metrics and a listener of type metrics on a free port
    (its client API served by the test server, as in every test)."""
    port = free_port()
    hs = await make_homeserver(
        enable_metrics=True,
        listeners=[{"port": port, "type": "metrics", "bind_addresses": ["127.0.0.1"]}],
    )
    await hs.server.start_listeners()
    yield Metered(hs, f"http://127.0.0.1:{port}/_synapse/metrics")
    await hs.server.stop_listeners()


async def test_the_metrics_listener_serves_prometheus_text(metered: Metered) -> None:
    scraped = await metered.scrape()
    # process and Python collectors
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_info",
        "python_gc_objects_collected_total",
        "python_gc_counts",
    ):
        assert scraped.matching(name, {"server_name": SERVER}), name
    assert scraped.value("synapse_server_name_info", server_name=SERVER) == 1
    # the series Synapse's dashboard lists server names from exists before any
    # federation traffic
    assert scraped.matching(
        "synapse_util_metrics_block_ru_utime_seconds_total", {"server_name": SERVER}
    )
    [build] = scraped.matching("synapse_build_info")
    assert build.value == 1 and build.labels["version"] and build.labels["pythonversion"]
    # server_name on every series, for the dashboard's filters and joins
    assert all(s.labels.get("server_name") == SERVER for s in scraped.samples)
    assert scraped.types["synapse_http_server_response_time_seconds"] == "histogram"
    assert scraped.types["synapse_storage_transaction_time_count"] == "counter"
    # Prometheus' default path answers too
    status, _, text = await scrape(metered.url.replace("/_synapse/metrics", "/metrics"))
    assert status == 200 and "synapse_server_name_info" in text


async def test_scheduled_collections_are_timed_by_generation(metered: Metered) -> None:
    """What the running server's gc manager reports (its observer is this family's)."""
    metrics = metered.hs.server.metrics
    assert metrics is not None
    metrics.gc.observe(2, 0.012, 7)
    metrics.gc.observe(0, 0.0004, 0)
    scraped = await metered.scrape()
    assert scraped.types["python_gc_time"] == "histogram"
    assert scraped.value("python_gc_time_count", gen="2", server_name=SERVER) == 1
    assert scraped.value("python_gc_time_bucket", gen="2", le="0.025", server_name=SERVER) == 1
    assert scraped.value("python_gc_time_bucket", gen="2", le="0.01", server_name=SERVER) == 0
    assert scraped.value("python_gc_unreachable_total", gen="2", server_name=SERVER) == 7
    assert scraped.value("python_gc_unreachable_total", gen="0", server_name=SERVER) == 0


async def test_a_message_moves_the_request_event_and_database_series(metered: Metered) -> None:
    alice = await make_user(metered.hs, "alice")
    room_id = await alice.create_room()
    before = await metered.scrape()
    await alice.send(room_id, "hello")
    after = await metered.scrape()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    send = {"servlet": "RoomSendEventRestServlet", "method": "PUT"}
    assert delta("synapse_http_server_requests_received_total", **send) == 1
    timed = {**send, "code": "200", "tag": ""}
    assert delta("synapse_http_server_response_time_seconds_count", **timed) == 1
    assert delta("synapse_http_server_response_time_seconds_bucket", le="+Inf", **timed) == 1
    assert delta("synapse_http_server_response_time_seconds_sum", **timed) > 0
    assert delta("synapse_http_server_responses_total", method="PUT", code="200") == 1
    assert after.value("synapse_http_server_in_flight_requests_count", **send) == 0
    assert delta("synapse_storage_events_persisted_events_total") == 1
    by_origin = {"type": "m.room.message", "origin_type": "local", "origin_entity": "*client*"}
    assert delta("synapse_storage_events_persisted_events_sep_total", **by_origin) == 1
    assert delta("synapse_storage_transaction_time_count_total", desc="persist_event") == 1
    assert delta("synapse_storage_transaction_time_sum_total", desc="persist_event") > 0
    # the servlet label names the endpoint, never the path (no room IDs in labels)
    servlets = {s.labels["servlet"] for s in after.samples if "servlet" in s.labels}
    assert "RoomSendEventRestServlet" in servlets and "RoomCreateRestServlet" in servlets
    assert not any("/" in servlet or "!" in servlet for servlet in servlets), servlets
    assert room_id not in after.text


async def test_syncs_are_counted_and_timed_by_kind(metered: Metered) -> None:
    alice = await make_user(metered.hs, "alice")
    first = await alice.sync()
    await alice.sync(since=first["next_batch"], timeout=0)
    await alice.sync(since=first["next_batch"], timeout=0)
    await alice.sync(since=first["next_batch"], timeout=0, full_state="true")
    scraped = await metered.scrape()
    sync = {"servlet": "SyncRestServlet", "method": "GET", "code": "200"}
    count = "synapse_http_server_response_time_seconds_count"
    assert scraped.value(count, tag="sync_v2:initial_sync", **sync) == 1
    assert scraped.value(count, tag="sync_v2:incremental_sync", **sync) == 2
    assert scraped.value(count, tag="sync_v2:full_state_sync", **sync) == 1
    assert (
        scraped.value("synapse_http_server_requests_received_total", servlet="SyncRestServlet") == 4
    )


async def test_unknown_paths_share_one_servlet_label(metered: Metered) -> None:
    client = metered.hs.client
    for path in ("/_matrix/client/v3/no/such/thing", "/_matrix/client/v3/nor/this/!room:x"):
        assert (await client.get(path)).status == 404
    scraped = await metered.scrape()
    unrecognised = {"servlet": "UnrecognizedRequestResource", "code": "404", "method": "GET"}
    assert scraped.value("synapse_http_server_response_time_seconds_count", **unrecognised) == 2
    assert "such" not in scraped.text and "!room" not in scraped.text


async def test_the_access_token_cache_counts_hits(metered: Metered) -> None:
    alice = await make_user(metered.hs, "alice")
    await alice.request("GET", "/account/whoami")  # now cached
    before = await metered.scrape()
    await alice.request("GET", "/account/whoami")
    await alice.request("GET", "/account/whoami")
    after = await metered.scrape()
    name = {"name": "get_user_by_access_token"}
    assert (
        after.value("synapse_util_caches_cache_hits", **name)
        - before.value("synapse_util_caches_cache_hits", **name)
        == 2
    )
    assert (
        after.value("synapse_util_caches_cache", **name)
        - before.value("synapse_util_caches_cache", **name)
        == 2
    )
    assert after.value("synapse_util_caches_cache_size", **name) >= 1
    assert after.value("synapse_util_caches_cache_max_size", **name) == 10_000


async def test_the_state_group_cache_counts_lookups(metered: Metered) -> None:
    alice = await make_user(metered.hs, "alice")
    room_id = await alice.create_room()
    await alice.send(room_id, "hello")
    name = {"name": "*stateGroupCache*"}
    before = await metered.scrape()
    stats = metered.hs.server.stores.sync.state_group_cache_stats
    lookups = stats.hits + stats.misses
    await alice.sync()  # the initial sync reads the room's state
    after = await metered.scrape()
    assert stats.hits + stats.misses > lookups
    grew = after.value("synapse_util_caches_cache", **name) - before.value(
        "synapse_util_caches_cache", **name
    )
    assert grew == stats.hits + stats.misses - lookups
    assert after.value("synapse_util_caches_cache_size", **name) == len(
        metered.hs.server.stores.sync._groups
    )


async def test_the_metrics_resource_on_an_http_listener(make_homeserver: HarnessFactory) -> None:
    port = free_port()
    hs = await make_homeserver(
        enable_metrics=True,
        listeners=[{"port": port, "resources": [{"names": ["client", "metrics"]}]}],
    )
    await hs.server.start_listeners()
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/_matrix/client/versions") as response:
                assert response.status == 200
        status, content_type, text = await scrape(f"{base}/_synapse/metrics")
        assert status == 200 and content_type == CONTENT_TYPE_LATEST
        scraped = Scrape.parse(text)
        versions = {"servlet": "VersionsRestServlet", "method": "GET", "code": "200"}
        assert scraped.value("synapse_http_server_response_time_seconds_count", **versions) == 1
    finally:
        await hs.server.stop_listeners()


async def test_without_enable_metrics_nothing_is_served(
    make_homeserver: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    metrics_port, http_port = free_port(), free_port()
    hs = await make_homeserver(
        listeners=[
            {"port": metrics_port, "type": "metrics"},
            {"port": http_port, "resources": [{"names": ["client", "metrics"]}]},
        ]
    )
    caplog.set_level(logging.WARNING, logger="homeserver.server")
    await hs.server.start_listeners()
    try:
        assert any("enable_metrics" in r.getMessage() for r in caplog.records)
        with pytest.raises(aiohttp.ClientConnectionError):
            await scrape(f"http://127.0.0.1:{metrics_port}/_synapse/metrics")
        status, _, body = await scrape(f"http://127.0.0.1:{http_port}/_synapse/metrics")
        assert status == 404 and "M_UNRECOGNIZED" in body
        # and the hot paths are not measured
        assert hs.server.db.transaction_observer is None
        assert hs.server.client.persister.metrics is None
    finally:
        await hs.server.stop_listeners()


async def test_a_request_in_flight_is_counted(metered: Metered) -> None:
    """A long-poll waiting for events shows in the in-flight gauge until answered."""
    alice = await make_user(metered.hs, "alice")
    room_id = await alice.create_room()
    first = await alice.sync()
    poll = metered.hs.client.get(
        f"{V3}/sync",
        params={"since": first["next_batch"], "timeout": "60000"},
        headers=alice.auth,
    )
    task = asyncio.ensure_future(poll)
    in_flight = {"servlet": "SyncRestServlet", "method": "GET"}
    scraped = await metered.scrape()
    while scraped.value("synapse_http_server_in_flight_requests_count", **in_flight) == 0:
        await asyncio.sleep(0)  # let the poll reach the server (no timing involved)
        scraped = await metered.scrape()
    assert scraped.value("synapse_http_server_in_flight_requests_count", **in_flight) == 1
    await alice.send(room_id, "wake up")
    response = await task
    assert response.status == 200
    scraped = await metered.scrape()
    assert scraped.value("synapse_http_server_in_flight_requests_count", **in_flight) == 0


async def test_cache_sizes_follow_the_caches_section(make_homeserver: HarnessFactory) -> None:
    """``caches.per_cache_factors`` (names as Synapse matches them: case and ``*``
    ignored) overrides ``global_factor`` for one cache; the others follow the global
    factor. The sizes show in ``synapse_util_caches_cache_max_size``."""
    port = free_port()
    hs = await make_homeserver(
        enable_metrics=True,
        listeners=[{"port": port, "type": "metrics", "bind_addresses": ["127.0.0.1"]}],
        caches={"global_factor": 2.0, "per_cache_factors": {"GETEVENT": 0.005}},
    )
    await hs.server.start_listeners()
    try:
        alice = await make_user(hs, "alice")
        room_id = await alice.create_room()
        for n in range(120):
            await alice.send(room_id, f"message {n}")
        status, _, text = await scrape(f"http://127.0.0.1:{port}/_synapse/metrics")
        assert status == 200
        scraped = Scrape.parse(text)
        assert scraped.value("synapse_util_caches_cache_max_size", name="*getEvent*") == 100
        assert scraped.value("synapse_util_caches_cache_size", name="*getEvent*") == 100
        assert (
            scraped.value(
                "synapse_util_caches_cache_evicted_size", name="*getEvent*", reason="size"
            )
            > 0
        )
        token_cache = {"name": "get_user_by_access_token"}
        assert scraped.value("synapse_util_caches_cache_max_size", **token_cache) == 40_000
        # the evicted events are read back from the database
        page = await alice.request("GET", f"/rooms/{room_id}/messages?dir=f&limit=30")
        bodies = [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"]
        assert bodies[:2] == ["message 0", "message 1"]
    finally:
        await hs.server.stop_listeners()
