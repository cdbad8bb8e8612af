"""Fixtures of the push tests: a real push gateway on loopback, and real federating
homeservers (for invites received over federation)."""

from __future__ import annotations

from tests.federation.servers import federation_servers, tls_files
from tests.push.support import gateway

__all__ = ["federation_servers", "gateway", "tls_files"]
