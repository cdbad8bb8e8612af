"""Federation and push series: transactions out and in between two real servers,
the per-destination backlog while a server is down, pushes to a real gateway."""

from __future__ import annotations

import logging

import pytest

from homeserver.server import Homeserver
from tests.conftest import HarnessFactory
from tests.federation.rooms import settle, share_room
from tests.federation.servers import ServerFactory, stop_listening
from tests.observability.support import Scrape
from tests.push.support import LOOPBACK_OK, Gateway, eventually, pool, room_with_pusher


async def scraped(server: Homeserver) -> Scrape:
    """What the metrics listener would serve now (the same rendering)."""
    assert server.metrics is not None
    return Scrape.parse((await server.metrics.render()).decode())


async def test_federation_transactions_out_and_in(
    federation_servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await federation_servers(2, enable_metrics=True)
    room_id, alice, _bob = await share_room(a, b)
    a_before, b_before = await scraped(a.server), await scraped(b.server)
    caplog.set_level(logging.INFO, logger="homeserver.access")
    await alice.send(room_id, "over the wire")
    await settle(a, b)
    a_after, b_after = await scraped(a.server), await scraped(b.server)

    def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    sent = grew(a_before, a_after, "synapse_federation_client_sent_transactions_total")
    assert sent >= 1
    assert (
        grew(a_before, a_after, "synapse_federation_client_sent_pdu_destinations_count_total") == 1
    )
    assert grew(a_before, a_after, "synapse_federation_client_sent_pdu_destinations_total") == 1
    # every run of the send block succeeded: runs minus successes (the dashboard's
    # failed transactions) is 0
    runs = grew(
        a_before,
        a_after,
        "synapse_util_metrics_block_count_total",
        block_name="_send_new_transaction",
    )
    assert runs == sent
    assert a_after.matching(
        "synapse_util_metrics_block_ru_utime_seconds_total", {"block_name": "_send_new_transaction"}
    )
    assert grew(b_before, b_after, "synapse_federation_server_received_transactions_total") >= 1
    assert grew(b_before, b_after, "synapse_federation_server_received_pdus_total") >= 1
    remote = {"type": "m.room.message", "origin_type": "remote", "origin_entity": a.server_name}
    assert (
        grew(b_before, b_after, "synapse_storage_events_persisted_events_sep_total", **remote) == 1
    )
    assert a_after.value("synapse_federation_transaction_queue_pending_pdus") == 0
    # b's request log names the sending server as the requester
    lines = [r.getMessage() for r in caplog.records if r.name == "homeserver.access"]
    assert any(
        "PUT /_matrix/federation/v1/send/" in line and line.endswith(a.server_name)
        for line in lines
    ), lines


async def test_the_backlog_of_a_destination_that_is_down(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2, enable_metrics=True)
    room_id, alice, _bob = await share_room(a, b)
    await stop_listening(b)
    for n in range(3):
        await alice.send(room_id, f"while b is down {n}")
    await settle(a)
    after = await scraped(a.server)
    assert (
        after.value("synapse_federation_destination_queue_pending_pdus", destination=b.server_name)
        == 3
    )
    assert after.value("synapse_federation_transaction_queue_pending_pdus") == 3
    assert after.value("synapse_federation_transaction_queue_pending_destinations") == 1
    failed_runs = after.value(
        "synapse_util_metrics_block_count_total", block_name="_send_new_transaction"
    ) - after.value("synapse_federation_client_sent_transactions_total")
    assert failed_runs >= 1


async def test_pushes_processed_and_failed(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(enable_metrics=True, **LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    await bob.send(room_id, "one")
    await eventually(lambda: len(gateway.received) == 1)
    scrape = await scraped(hs.server)
    assert scrape.value("synapse_http_httppusher_http_pushes_processed_total") == 1
    assert scrape.value("synapse_http_httppusher_http_pushes_failed_total") == 0
    assert scrape.value("synapse_pushers", kind="http", app_id="com.example.app.ios") == 1
    gateway.status = 500
    await bob.send(room_id, "two")
    await eventually(lambda: gateway.attempts == 2)
    pusher = pool(hs).pusher(alice.user_id, "com.example.app.ios", "a-push-key")
    assert pusher is not None
    await eventually(lambda: pusher.next_attempt_ms is not None)
    scrape = await scraped(hs.server)
    assert scrape.value("synapse_http_httppusher_http_pushes_processed_total") == 1
    assert scrape.value("synapse_http_httppusher_http_pushes_failed_total") == 1
