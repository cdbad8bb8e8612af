"""Fixtures of the SSO tests: a fake CAS server and a fake OpenID provider on loopback."""

from __future__ import annotations

from tests.sso.oidc_support import oidc
from tests.sso.support import cas

__all__ = ["cas", "oidc"]
