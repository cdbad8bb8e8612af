"""Password hashing with bcrypt, off the event loop."""

from __future__ import annotations

import asyncio

import bcrypt

# bcrypt only looks at the first 72 bytes; longer passwords are refused so that two
# passwords sharing a prefix never collide silently.
MAX_PASSWORD_BYTES = 72


class PasswordHasher:
    def __init__(self, rounds: int = 12) -> None:
        self.rounds = rounds

    async def hash(self, password: str) -> str:
        secret = password.encode("utf-8")
        salt = bcrypt.gensalt(self.rounds)
        hashed = await asyncio.to_thread(bcrypt.hashpw, secret, salt)
        return hashed.decode("ascii")

    async def verify(self, password: str, stored_hash: str | None) -> bool:
        if not stored_hash:
            return False
        secret = password.encode("utf-8")
        if len(secret) > MAX_PASSWORD_BYTES:
            return False
        try:
            return await asyncio.to_thread(bcrypt.checkpw, secret, stored_hash.encode("ascii"))
        except ValueError:
            return False
