"""Fixtures of the third-party ID tests: an SMTP server and an identity server."""

from __future__ import annotations

from tests.threepids.support import identity_server, smtp, tls_files

__all__ = ["identity_server", "smtp", "tls_files"]
