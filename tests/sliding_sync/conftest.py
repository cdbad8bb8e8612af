"""Federating homeservers for the sliding sync tests (forks, remote joins, backfill)."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
