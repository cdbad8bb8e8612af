"""Fixtures of the guest tests: real federating homeservers, for guests joining and
leaving rooms of other servers."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
