"""Fixtures of the federation tests: real federating homeservers on loopback HTTPS."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
