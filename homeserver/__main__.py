"""Command line: run the server, generate a config, register a user, manage registration tokens.

    python -m homeserver --config FILE [--config FILE ...] run until SIGINT/SIGTERM
    python -m homeserver generate-config --server-name NAME --config FILE
    python -m homeserver register-user --config FILE USER [--password P] [--admin]
    python -m homeserver registration-token --config FILE [--uses N] [--expiry-ts MS] [TOKEN]
    python -m homeserver generate-workers --config FILE --workers events=2,sync=2 --out DIR

Several ``--config`` files (a shared one, then a worker's) are merged in order, a
later file's top-level keys replacing an earlier one's, as in Synapse.

Every problem (bad arguments, a missing file, an invalid config, a database that
cannot be opened or reached) is one line on stderr and exit status 1, never a
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from homeserver.config import ConfigError, HomeserverConfig, generate_config, load_config
from homeserver.deploy.workers import DEFAULT_BASE_PORT, DeployError
from homeserver.errors import MatrixError
from homeserver.log_config import DEFAULT_FORMAT, LogConfigError, apply_log_config
from homeserver.request_context import install_record_factory
from storage.database import DatabaseOpenError
from storage.migrations import SchemaError


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="homeserver", description="A Matrix homeserver.")
    parser.add_argument(
        "--config",
        "-c",
        action="append",
        help="path of a YAML config file; repeat to merge several, later keys winning",
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = commands.add_parser("run", help="run the homeserver (the default)")
    run.add_argument("--config", "-c", dest="sub_config", action="append")

    gen = commands.add_parser("generate-config", help="write a new config and signing key")
    gen.add_argument("--server-name", required=True)
    gen.add_argument("--config", "-c", dest="sub_config", required=True)

    reg = commands.add_parser("register-user", help="create a user in the database")
    reg.add_argument("--config", "-c", dest="sub_config", action="append")
    reg.add_argument("user", help="localpart or full user ID")
    reg.add_argument("--password", "-p")
    reg.add_argument("--admin", action="store_true")

    tok = commands.add_parser("registration-token", help="create a registration token")
    tok.add_argument("--config", "-c", dest="sub_config", action="append")
    tok.add_argument("token", nargs="?", help="the token (random if omitted)")
    tok.add_argument("--uses", type=int, default=None, help="how many registrations it allows")
    tok.add_argument("--expiry-ts", type=int, default=None, help="expiry, ms since the epoch")

    workers = commands.add_parser(
        "generate-workers",
        help="write worker configs, nginx.conf and supervisord.conf for several processes",
    )
    workers.add_argument("--config", "-c", dest="sub_config", action="append")
    workers.add_argument(
        "--workers",
        required=True,
        help="roles and counts, like events=2,sync=2,client=1,federation_inbound=1 "
        "(a+b=2: two processes holding both roles)",
    )
    workers.add_argument("--out", required=True, help="the directory to write to")
    workers.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help=f"the main process's internal port; workers take the next ones "
        f"(default {DEFAULT_BASE_PORT})",
    )
    return parser


def _config_paths(args: argparse.Namespace) -> list[str]:
    """Every ``--config`` given, those before the command first."""
    paths = [*(args.config or ()), *(getattr(args, "sub_config", None) or ())]
    if not paths:
        raise UsageError("--config FILE is required")
    return [str(path) for path in paths]


def configure_logging(level: str, log_config: Path | None = None) -> None:
    """Logging to stderr at `level` in Synapse's default format, or as the dictConfig
    YAML file `log_config` says (Synapse's ``log_config``, its class paths mapped to
    ours: see homeserver/log_config.py). Every record carries ``request``."""
    if log_config is not None:
        try:
            apply_log_config(log_config)
        except LogConfigError as error:
            raise ConfigError(str(error)) from None
    else:
        install_record_factory()
        logging.basicConfig(
            level=getattr(logging, level.upper(), logging.INFO),
            format=DEFAULT_FORMAT,
            stream=sys.stderr,
        )
    quiet_driver_loggers()


def warn_about_config(config: HomeserverConfig) -> None:
    """One warning per Synapse option the file sets that this server ignores, and a
    loud one when outbound TLS certificates are not checked."""
    logger = logging.getLogger("homeserver.config")
    for warning in config.ignored_options:
        logger.warning("%s", warning)
    if config.use_insecure_ssl_client_just_for_testing_do_not_use:
        logger.warning(
            "use_insecure_ssl_client_just_for_testing_do_not_use is set: outbound HTTPS "
            "(federation, push gateways, URL previews) does NOT check certificates. "
            "Anyone on the network path can impersonate other servers. Never use this "
            "outside a test setup."
        )


def quiet_driver_loggers() -> None:
    """Drivers log statement arguments (token and password hashes) at DEBUG: never show them."""
    level = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    for noisy in ("aiosqlite", "psycopg", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(level)


async def _register_user(config: HomeserverConfig, user: str, password: str, admin: bool) -> str:
    from homeserver.server import Homeserver

    server = await Homeserver.build(config)
    try:
        localpart = user
        if user.startswith("@"):
            localpart, _, server_name = user[1:].partition(":")
            if server_name != config.server_name:
                raise UsageError(f"{user} is not a user of {config.server_name}")
        user_id, _ = await server.client.accounts.register(
            localpart, password, admin=admin, login=False
        )
        return user_id
    finally:
        await server.close()


async def _create_token(
    config: HomeserverConfig, token: str | None, uses: int | None, expiry: int | None
) -> str:
    from homeserver.server import Homeserver

    server = await Homeserver.build(config)
    try:
        # The same rules as the admin API: the token's alphabet and length, uses >= 0 ...
        created = await server.client.accounts.create_registration_token(
            token, uses_allowed=uses, expiry_time=expiry
        )
        return created.token
    finally:
        await server.close()


def _generate_workers(args: argparse.Namespace) -> int:
    from homeserver.deploy.generate import generate_workers

    deployment = generate_workers(
        [Path(path) for path in _config_paths(args)],
        args.workers,
        Path(args.out),
        base_port=args.base_port,
    )
    for path in deployment.files:
        print(f"wrote {path}")
    names = ", ".join(process.name for process in deployment.plan.processes)
    print(f"processes: {names}")
    if deployment.database_from_environment:
        print("the database is HOMESERVER_DATABASE_URL: start supervisord with it set")
    print(f"run: supervisord -c {deployment.out_dir / 'supervisord.conf'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except (UsageError, ConfigError, DeployError, SchemaError, DatabaseOpenError) as exc:
        print(f"homeserver: {exc}", file=sys.stderr)
        return 1
    except MatrixError as exc:
        print(f"homeserver: {exc.errcode}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"homeserver: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    if command == "generate-config":
        generate_config(args.server_name, Path(args.sub_config))
        print(f"wrote {args.sub_config}")
        return 0
    if command == "generate-workers":
        return _generate_workers(args)
    config = load_config(_config_paths(args))
    configure_logging(config.log_level, config.log_config)
    warn_about_config(config)
    if command == "run":
        from homeserver import event_loop
        from homeserver.server import run

        event_loop.run(run(config))
        return 0
    if command == "register-user":
        password = args.password
        if password is None:
            if not sys.stdin.isatty():
                raise UsageError("--password is required when not on a terminal")
            import getpass  # (only here: it brings termios)

            password = getpass.getpass("Password: ")
        user_id = asyncio.run(_register_user(config, args.user, password, args.admin))
        print(f"registered {user_id}")
        return 0
    if command == "registration-token":
        print(asyncio.run(_create_token(config, args.token, args.uses, args.expiry_ts)))
        return 0
    raise UsageError(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(main())
