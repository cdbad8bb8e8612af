"""Fixtures of the SSO tests: a fake CAS server on loopback."""

from __future__ import annotations

from tests.sso.support import cas

__all__ = ["cas"]
