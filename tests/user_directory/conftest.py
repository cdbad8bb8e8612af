"""Fixtures of the user directory tests: real federating homeservers for remote users."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
