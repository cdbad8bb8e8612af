"""Fixtures of the push tests: a real push gateway on loopback, and real federating
homeservers (for invites received over federation)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.federation.servers import federation_servers, tls_files
from tests.push.support import Gateway, serve_gateway

__all__ = ["federation_servers", "gateway", "tls_files"]


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    runner = await serve_gateway(gw)
    yield gw
    gw.release.set()
    await runner.cleanup()
