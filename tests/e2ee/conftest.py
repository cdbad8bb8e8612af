"""Fixtures of the e2ee tests: federating homeservers for the cross-server tests."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
