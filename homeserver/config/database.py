"""The ``database`` section, and the ``HOMESERVER_DATABASE_URL`` override.

Synapse's shape::

    database:
      name: sqlite3            # or psycopg (psycopg2 is accepted as an alias)
      args:
        database: data/homeserver.db

    database:
      name: psycopg
      args: {user: ..., password: ..., dbname: ..., host: ..., port: ..., cp_min: ..., cp_max: ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from homeserver.config._reader import (
    ConfigError,
    Reader,
    int_between,
    one_of,
    to_nonempty_str,
    to_path,
    to_port,
    to_str,
)

DATABASE_URL_VARIABLE = "HOMESERVER_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path("data/homeserver.db")


@dataclass(frozen=True, slots=True)
class PostgresArgs:
    """Connection parameters for PostgreSQL (``database.args`` with ``name: psycopg``).
    None means "libpq's default" (its environment variables, then built-in defaults)."""

    dbname: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 5432
    sslmode: str | None = None
    cp_min: int = 2
    cp_max: int = 10

    def conninfo(self) -> str:
        """A libpq keyword/value connection string (without the pool sizes)."""
        params: list[tuple[str, str | int | None]] = [
            ("host", self.host),
            ("port", self.port),
            ("dbname", self.dbname),
            ("user", self.user),
            ("password", self.password),
            ("sslmode", self.sslmode),
        ]
        return " ".join(f"{key}={_conninfo_value(str(v))}" for key, v in params if v is not None)


def _conninfo_value(value: str) -> str:
    """Quote a conninfo value as libpq wants: single quotes, backslash-escaped."""
    if value and not any(c in value for c in " '\\\t\n\r="):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Which engine, and where. Exactly one of `sqlite_path` and `pg` is set."""

    engine: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path | None = DEFAULT_SQLITE_PATH
    pg: PostgresArgs | None = None

    @staticmethod
    def sqlite(path: Path) -> DatabaseConfig:
        return DatabaseConfig(engine="sqlite", sqlite_path=path, pg=None)

    @staticmethod
    def postgres(args: PostgresArgs) -> DatabaseConfig:
        return DatabaseConfig(engine="postgres", sqlite_path=None, pg=args)

    def postgres_conninfo(self) -> str:
        """The libpq connection string; ValueError if the engine is not PostgreSQL."""
        if self.pg is None:
            raise ValueError("the database is not PostgreSQL")
        return self.pg.conninfo()

    @staticmethod
    def parse(reader: Reader) -> DatabaseConfig:
        errors_before = len(reader.errors)
        name = reader.get("name", one_of("sqlite3", "psycopg", "psycopg2"), "sqlite3")
        if len(reader.errors) > errors_before:
            reader.raw("args")  # which arguments are valid depends on the engine
            reader.finish()
            return DatabaseConfig()
        args = reader.child("args")
        if name == "sqlite3":
            path = args.get("database", to_path, DEFAULT_SQLITE_PATH)
            args.finish()
            reader.finish()
            return DatabaseConfig.sqlite(path)
        pg = _parse_postgres_args(args)
        args.finish()
        reader.finish()
        return DatabaseConfig.postgres(pg)


def _parse_postgres_args(args: Reader) -> PostgresArgs:
    dbname = args.optional("dbname", to_nonempty_str)
    alias = args.optional("database", to_nonempty_str)
    if dbname is not None and alias is not None:
        args.error("database", "give either dbname or its alias database, not both")
    cp_min = args.get("cp_min", int_between(1, 1000), 2)
    cp_max = args.get("cp_max", int_between(1, 1000), 10)
    if cp_min > cp_max:
        args.error("cp_min", f"must not exceed cp_max ({cp_max}), got {cp_min}")
    return PostgresArgs(
        dbname=dbname if dbname is not None else alias,
        user=args.optional("user", to_nonempty_str),
        password=args.optional("password", to_str),
        host=args.get("host", to_nonempty_str, "127.0.0.1"),
        port=args.get("port", to_port, 5432),
        sslmode=args.optional(
            "sslmode", one_of("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
        ),
        cp_min=cp_min,
        cp_max=cp_max,
    )


def database_from_url(url: str) -> DatabaseConfig:
    """Parse ``postgres[ql]://user:password@host:port/dbname[?sslmode=...]``.

    Percent-escapes are decoded in every part (so a Unix socket directory can be given
    as the host, ``%2Fvar%2Frun%2Fpostgresql``). Raises ConfigError naming the variable.
    """

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{DATABASE_URL_VARIABLE}: {reason}")

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise bad(f"not a valid URL ({error})") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise bad("expected a URL like postgresql://user:password@host:5432/dbname")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise bad("the URL must end with /<database name>")
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        host = host[1 : host.find("]")]
    else:
        host = host.partition(":")[0]
    sslmode: str | None = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "sslmode":
            raise bad(f"unsupported URL parameter {key!r} (only sslmode is supported)")
        sslmode = value
    return DatabaseConfig.postgres(
        PostgresArgs(
            dbname=dbname,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            host=unquote(host) if host else "127.0.0.1",
            port=port if port is not None else 5432,
            sslmode=sslmode,
        )
    )


def database_override(environ: Mapping[str, str]) -> DatabaseConfig | None:
    """The database given by HOMESERVER_DATABASE_URL, if set and not empty."""
    url = environ.get(DATABASE_URL_VARIABLE, "")
    return database_from_url(url) if url.strip() else None
