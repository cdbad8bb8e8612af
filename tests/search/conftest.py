"""Fixtures of the search tests: real federating homeservers (backfilled history)."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
