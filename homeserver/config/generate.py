"""Creating a new server's files: the config file and the ed25519 signing key."""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from signedjson.key import generate_signing_key, read_signing_keys, write_signing_keys
from signedjson.types import SigningKey

from homeserver.config._reader import ConfigError, is_server_name
from homeserver.config.template import render_config


def _new_key_version() -> str:
    """A key version like Synapse's: "a_" and four random letters or digits."""
    alphabet = string.ascii_letters + string.digits
    return "a_" + "".join(secrets.choice(alphabet) for _ in range(4))


def _write_private_file(path: Path, text: str) -> None:
    """Create `path` (which must not exist) readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(text)


def _write_new_signing_key(path: Path) -> SigningKey:
    key = generate_signing_key(_new_key_version())
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        write_signing_keys(stream, [key])
    return key


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The server's signing key from `path` (Synapse's format, ``ed25519 <version>
    <base64 seed>``); a new one is created there (mode 0600, parent directories
    included) if the file does not exist. The key ID is ``"ed25519:" + key.version``.
    Raises ConfigError if the file exists but holds no valid key."""
    try:
        with open(path, encoding="utf-8") as stream:
            keys = read_signing_keys(stream)
    except FileNotFoundError:
        try:
            return _write_new_signing_key(path)
        except FileExistsError:  # created concurrently: read that one
            return load_or_create_signing_key(path)
        except OSError as error:
            raise ConfigError(f"signing_key_path: cannot create {path}: {error}") from None
    except OSError as error:
        raise ConfigError(f"signing_key_path: cannot read {path}: {error}") from None
    except Exception as error:  # signedjson raises ValueError, binascii.Error ...
        raise ConfigError(
            f"signing_key_path: {path} does not hold a signing key: {error}"
        ) from None
    if not keys:
        raise ConfigError(f"signing_key_path: {path} does not hold a signing key")
    return keys[0]


def generate_config(server_name: str, config_path: Path, *, data_dir: Path | None = None) -> None:
    """Write a new commented config file for `server_name` at `config_path`, and a new
    signing key beside it.

    Database and media go under `data_dir` (default: ``data/`` beside the config
    file); paths are written absolute so the server can start from any directory.
    Registration is closed; a random registration_shared_secret lets the admin create
    the first accounts. Raises ConfigError if the config file or key file exists.
    """
    if not is_server_name(server_name):
        raise ConfigError(f"server_name: not a valid server name: {server_name!r}")
    config_path = Path(config_path)
    config_dir = config_path.absolute().parent
    data = (Path(data_dir) if data_dir is not None else config_dir / "data").absolute()
    key_path = config_dir / f"{server_name.replace(':', '_')}.signing.key"
    for existing in (config_path, key_path):
        if existing.exists():
            raise ConfigError(f"{existing} already exists; not overwriting it")
    text = render_config(
        server_name=server_name,
        database_path=str(data / "homeserver.db"),
        signing_key_path=str(key_path),
        media_store_path=str(data / "media_store"),
        registration_shared_secret=secrets.token_urlsafe(32),
        open_registration=False,
    )
    config_dir.mkdir(parents=True, exist_ok=True)
    try:
        _write_private_file(config_path, text)  # it holds a secret
    except FileExistsError:
        raise ConfigError(f"{config_path} already exists; not overwriting it") from None
    _write_new_signing_key(key_path)
