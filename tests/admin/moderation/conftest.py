"""The federation tests' fixtures, for the destination admin endpoints."""

from tests.federation.servers import federation_servers, tls_files

__all__ = ["federation_servers", "tls_files"]
