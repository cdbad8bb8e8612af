"""Fixtures of the tests with real processes: a push gateway on loopback (the
pusher worker's)."""

from __future__ import annotations

from tests.push.support import gateway

__all__ = ["gateway"]
