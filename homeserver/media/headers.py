"""Response headers for served media (client-server API: Content repository, Serving
inline content)."""

from __future__ import annotations

from urllib.parse import quote

CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf;"
    " style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)

# The spec's list of types that may be served with ``Content-Disposition: inline``.
INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)

DEFAULT_CONTENT_TYPE = "application/octet-stream"

# RFC 5987 attr-char: what may appear unescaped in ``filename*=utf-8''...``.
_ATTR_CHARS = "!#$&+-.^_`|~"
# Printable ASCII that needs no escaping inside a quoted ``filename="..."``.
_PLAIN_FILENAME = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def base_content_type(content_type: str | None) -> str:
    """The media type without parameters, lower-cased (``Text/HTML; charset=x`` -> ``text/html``)."""
    if not content_type:
        return DEFAULT_CONTENT_TYPE
    return content_type.split(";", 1)[0].strip().lower()


def is_inline_safe(content_type: str | None) -> bool:
    return base_content_type(content_type) in INLINE_CONTENT_TYPES


def content_disposition(content_type: str | None, filename: str | None) -> str:
    """``inline`` for the spec's safe types, ``attachment`` otherwise, with the file name
    (RFC 6266: a quoted ASCII ``filename`` or an RFC 5987 ``filename*`` for the rest)."""
    disposition = "inline" if is_inline_safe(content_type) else "attachment"
    if not filename:
        return disposition
    return f"{disposition}; {filename_parameter(filename)}"


def filename_parameter(filename: str) -> str:
    if all(c in _PLAIN_FILENAME for c in filename):
        return f'filename="{filename}"'
    return "filename*=utf-8''" + quote(filename, safe=_ATTR_CHARS, encoding="utf-8")


def media_headers(content_type: str | None, disposition: str, *, private: bool) -> dict[str, str]:
    """Every header of a media response but the length, range and validators."""
    return {
        "Content-Type": content_type or DEFAULT_CONTENT_TYPE,
        "Content-Disposition": disposition,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
        # Content behind a media ID never changes. Authenticated media must not be kept
        # by shared caches, which would hand it out without the access token.
        "Cache-Control": ("private" if private else "public") + ", max-age=86400, immutable",
    }
