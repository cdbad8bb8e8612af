"""Fixtures of the room admin tests: real federating homeservers, for blocking and
purging rooms that other servers share."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
