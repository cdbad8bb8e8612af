"""Helpers for the e2ee tests across servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from federation.errors import FederationError

V1 = "/_matrix/federation/v1"


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until ``check()`` holds (work after a commit runs in background tasks)."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 (polling another server's state)
            await asyncio.sleep(0.02)


async def fed_error(call: Awaitable[Any]) -> FederationError:
    """The FederationError a request ends with."""
    with pytest.raises(FederationError) as info:
        await call
    return info.value
