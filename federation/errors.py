"""Errors of requests this server makes to other servers.

    FederationError(destination, message, status=, errcode=)   a remote request failed
    └── FederationDenied      refused before sending: destination not allowed by
                              ``federation_domain_whitelist`` or only reachable at a
                              blacklisted IP address

``status`` is the remote HTTP status, or None when no HTTP answer came (unreachable,
timeout, TLS failure, a body too large or not JSON, or nothing sent: denied). ``errcode`` is the remote Matrix
errcode when the answer carried one. Callers turn these into their own outcome: a
peer's bad answer is never allowed to surface as a 500 of ours.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import MatrixError


class FederationError(Exception):
    """A request to ``destination`` did not give a usable answer."""

    def __init__(
        self,
        destination: str,
        message: str,
        *,
        status: int | None = None,
        errcode: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination
        self.message = message
        self.status = status
        self.errcode = errcode
        self.body = body

    @property
    def retryable(self) -> bool:
        """Whether trying again later may help (no answer, 429 or a 5xx)."""
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def unknown_endpoint(self) -> bool:
        """Whether the remote does not implement the endpoint: a 404 or 405 with
        ``M_UNRECOGNIZED`` or without a JSON object (older servers), or a 400 with
        ``M_UNRECOGNIZED`` (older Synapses). Callers then fall back to an older API
        version (v2 -> v1), as Synapse does."""
        if self.status in (404, 405):
            return not isinstance(self.body, dict) or self.errcode == "M_UNRECOGNIZED"
        return self.status == 400 and self.errcode == "M_UNRECOGNIZED"

    def to_matrix_error(self) -> MatrixError:
        """How to report this failure to our own client: 502 unless the remote said
        something a client can act on (404 / 403 from the remote are passed on)."""
        if self.status in (403, 404) and self.errcode:
            return MatrixError(self.status, self.errcode, self.message)
        return MatrixError(502, "M_UNKNOWN", f"Failed to reach {self.destination}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.destination!r}, {self.message!r}, "
            f"status={self.status}, errcode={self.errcode!r})"
        )


class FederationDenied(FederationError):
    """The request was not sent: policy forbids talking to ``destination``."""

    def __init__(self, destination: str, message: str) -> None:
        super().__init__(destination, message, errcode="M_FORBIDDEN")

    @property
    def retryable(self) -> bool:
        return False

    def to_matrix_error(self) -> MatrixError:
        """Our own configuration forbids the server: 403 M_FORBIDDEN (as Synapse), not
        the 502 of a server that could not be reached."""
        return MatrixError(403, "M_FORBIDDEN", f"Federation denied with {self.destination}")
