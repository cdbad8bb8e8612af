"""Fixtures of the spaces tests: real federating homeservers for remote spaces."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
