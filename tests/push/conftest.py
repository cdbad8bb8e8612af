"""Fixtures of the push tests: a real push gateway on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.push.support import Gateway, serve_gateway


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    runner = await serve_gateway(gw)
    yield gw
    await runner.cleanup()
