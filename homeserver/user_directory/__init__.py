"""The user directory (``POST /user_directory/search``), kept current on write.

Modules: ``service`` (who may be found, the search, and the hooks that keep the
directory current).
"""

from homeserver.user_directory.service import UserDirectory, is_public, parse_search_body

__all__ = ["UserDirectory", "is_public", "parse_search_body"]
