"""Server-side search (``POST /search``): a full-text index kept on write, queried
within the rooms a user is in and filtered by what they may see."""

from homeserver.search.service import SearchService

__all__ = ["SearchService"]
