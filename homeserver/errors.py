"""The one error type of the homeserver, rendered as a Matrix error by the middleware.

    MatrixError(status, errcode, message)       any error a client or server sees
    ├── NotFound             404 M_NOT_FOUND
    ├── Forbidden            403 M_FORBIDDEN
    ├── BadJson              400 M_BAD_JSON
    ├── NotJson              400 M_NOT_JSON
    ├── MissingParam         400 M_MISSING_PARAM
    ├── InvalidParam         400 M_INVALID_PARAM
    ├── Unrecognized         404/405 M_UNRECOGNIZED
    ├── UnknownToken         401 M_UNKNOWN_TOKEN (soft_logout optional)
    ├── MissingToken         401 M_MISSING_TOKEN
    ├── LimitExceeded        429 M_LIMIT_EXCEEDED (retry_after_ms)
    └── TooLarge             413 M_TOO_LARGE

Extra fields (``retry_after_ms``, UIA ``flows`` ...) travel in ``extra`` and are
merged into the JSON body.
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """An error with an HTTP status and a Matrix errcode."""

    def __init__(
        self,
        status: int,
        errcode: str,
        message: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errcode": self.errcode, "error": self.message}
        body.update(self.extra)
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.errcode!r}, {self.message!r})"


class NotFound(MatrixError):
    def __init__(self, message: str = "Not found") -> None:
        super().__init__(404, "M_NOT_FOUND", message)


class Forbidden(MatrixError):
    def __init__(self, message: str = "Forbidden", *, errcode: str = "M_FORBIDDEN") -> None:
        super().__init__(403, errcode, message)


class BadJson(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "M_BAD_JSON", message)


class NotJson(MatrixError):
    def __init__(self, message: str = "Content not JSON.") -> None:
        super().__init__(400, "M_NOT_JSON", message)


class MissingParam(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "M_MISSING_PARAM", message)


class InvalidParam(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "M_INVALID_PARAM", message)


class Unrecognized(MatrixError):
    def __init__(self, message: str = "Unrecognized request", status: int = 404) -> None:
        super().__init__(status, "M_UNRECOGNIZED", message)


class UnknownToken(MatrixError):
    def __init__(self, message: str = "Unknown access token", *, soft_logout: bool = False) -> None:
        super().__init__(401, "M_UNKNOWN_TOKEN", message, extra={"soft_logout": soft_logout})


class MissingToken(MatrixError):
    def __init__(self, message: str = "Missing access token") -> None:
        super().__init__(401, "M_MISSING_TOKEN", message)


class LimitExceeded(MatrixError):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(
            429,
            "M_LIMIT_EXCEEDED",
            "Too many requests",
            extra={"retry_after_ms": retry_after_ms},
            headers={"Retry-After": str(max(1, (retry_after_ms + 999) // 1000))},
        )


class TooLarge(MatrixError):
    def __init__(self, message: str = "Request too large") -> None:
        super().__init__(413, "M_TOO_LARGE", message)
