"""Talking to identity servers (the Identity Service API): third-party ID lookups,
stored invites and the validity of their signing keys."""
