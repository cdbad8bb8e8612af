"""User names of an identity provider as Matrix localparts (appendices: "Mapping from
other character sets"), the way Synapse maps them, so accounts line up with its own."""

from __future__ import annotations

import string
from typing import Final

# The localpart grammar's characters, without "=" (it starts an escape).
_KEPT: Final = frozenset((string.ascii_lowercase + string.digits + "_-./+").encode("ascii"))


def map_username_to_localpart(username: str) -> str:
    """``username`` as a localpart: UTF-8 bytes, ASCII letters lower-cased, every other
    byte outside the grammar (and "=") written as ``=xx`` in hex, and a leading "_"
    escaped too (``Alice`` -> ``alice``, ``cas_user!`` -> ``cas_user=21``,
    ``José`` -> ``jos=c3=a9``). Distinct names may map to the same localpart only when
    they differ in ASCII case."""
    mapped = []
    for byte in username.encode("utf-8").lower():
        mapped.append(chr(byte) if byte in _KEPT else f"={byte:02x}")
    localpart = "".join(mapped)
    if localpart.startswith("_"):
        localpart = "=5f" + localpart[1:]
    return localpart
