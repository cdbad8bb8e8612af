"""Exceptions raised by the pure event core.

Tree::

    ValueError
     +-- InvalidIdentifier        an ID or server name does not match the appendix grammar
     +-- EventValidationError     a PDU does not match its room version's event format
    Exception
     +-- AuthError                an event fails an authorisation rule (``rule`` names it)
     +-- SignatureError           a signature is missing, malformed or does not verify

Callers at the edge (client API, federation) translate these into Matrix errors.
"""

from __future__ import annotations


class InvalidIdentifier(ValueError):
    """An identifier (user ID, room ID, event ID, alias, server name) is malformed."""


class EventValidationError(ValueError):
    """A PDU does not satisfy the event format of its room version."""


class AuthError(Exception):
    """An event is not allowed by the authorisation rules.

    ``rule`` is the spec rule number as written on the room version page
    (for example ``"5.3.2"`` or ``"10.4"``), so logs say which rule failed.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"auth rule {rule}: {message}")
        self.rule = rule
        self.message = message


class SignatureError(Exception):
    """A JSON object or event lacks a valid signature from a required entity."""
