"""Fixtures of the registration tests: a siteverify endpoint on loopback."""

from __future__ import annotations

from tests.registration.support import siteverify

__all__ = ["siteverify"]
