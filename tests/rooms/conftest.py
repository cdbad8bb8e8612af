"""Fixtures of the room tests: real federating homeservers, for what rooms ask of other
servers (the published room directory of another server)."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
