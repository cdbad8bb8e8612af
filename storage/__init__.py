"""Storage: one async Database interface over SQLite or PostgreSQL, and one store per concern."""

from storage.database import Database, IntegrityError, RetryableError, Transaction

__all__ = ["Database", "IntegrityError", "RetryableError", "Transaction"]
