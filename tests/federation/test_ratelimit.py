"""Inbound federation rate limits per origin (``rc_federation``): /send and the
event reads answer 429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms`` over the bucket."""

from __future__ import annotations

import pytest

from federation.errors import FederationError
from tests.federation.rooms import send_txn
from tests.federation.servers import ServerFactory

EVENT = "/_matrix/federation/v1/event/$nope"
LIMITED = {"rc_federation": {"per_second": 1, "burst_count": 3}}


async def test_each_origin_has_its_own_bucket(federation_servers: ServerFactory) -> None:
    a, b, c = await federation_servers(3, per_server=[{}, LIMITED, {}])
    for _ in range(2):
        with pytest.raises(FederationError) as caught:
            await a.fed.client.get_json(b.server_name, EVENT)
        assert caught.value.status == 404
    assert await send_txn(a, b, []) == {"pdus": {}}
    # The fourth request of a within the second is refused, before any processing.
    with pytest.raises(FederationError) as caught:
        await a.fed.client.get_json(b.server_name, EVENT)
    assert (caught.value.status, caught.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    with pytest.raises(FederationError) as caught:
        await send_txn(a, b, [])
    assert (caught.value.status, caught.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    # c is not affected by a's bucket.
    assert await send_txn(c, b, []) == {"pdus": {}}
    # a's bucket refills with time.
    a.clock.advance(1.5)
    assert await send_txn(a, b, []) == {"pdus": {}}


async def test_retry_after_is_given(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2, per_server=[{}, LIMITED])
    for _ in range(3):
        await send_txn(a, b, [])
    with pytest.raises(FederationError) as caught:
        await send_txn(a, b, [])
    body = caught.value.body
    assert isinstance(body, dict) and body["errcode"] == "M_LIMIT_EXCEEDED"
    assert 0 < body["retry_after_ms"] <= 1001
