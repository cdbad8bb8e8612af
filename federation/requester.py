"""What code asking other servers needs of ``federation.client.FederationClient``.

One narrow protocol, so fetching events, keys and user keys can be tested with a
fake transport instead of a real client.
"""

from __future__ import annotations

from typing import Any, Protocol


class FederationRequester(Protocol):
    async def get_json(
        self,
        destination: str,
        path: str,
        query: Any = None,
        *,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
    ) -> Any: ...

    async def post_json(
        self,
        destination: str,
        path: str,
        body: Any,
        query: Any = None,
        *,
        timeout_s: float | None = None,
        max_bytes: int | None = None,
    ) -> Any: ...
