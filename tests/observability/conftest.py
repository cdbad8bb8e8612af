"""Fixtures of the observability tests: federating servers and a push gateway."""

from tests.federation.servers import federation_servers, tls_files
from tests.push.conftest import gateway

__all__ = ["federation_servers", "gateway", "tls_files"]
