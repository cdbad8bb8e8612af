"""What a server with the default config does not load: the heavy dependencies of
optional features (OIDC and JWT, workers over Redis, thumbnails, templates, email,
phone numbers, CAS) are imported on first use, so a server that never uses them
does not carry their memory (several MB each; bench/startup_rss.py measures it)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.child_python import run_python
from tests.federation.servers import free_port

# top-level module -> the feature that needs it
OPTIONAL_MODULES = {
    "joserfc": "OIDC ID tokens",
    "cryptography": "OIDC ID tokens (through joserfc)",
    "redis": "workers",
    "PIL": "thumbnails and URL previews of images",
    "jinja2": "templates (email, consent, OIDC mapping)",
    "aiosmtplib": "sending email",
    "phonenumbers": "phone numbers (msisdn)",
    "xml.etree": "CAS logins",
    # aiohttp's signal lists: homeserver/__init__.py picks frozenlist's pure-Python
    # build, since the compiled one is C++ and maps libstdc++ (0.9 MB resident)
    "frozenlist._frozenlist": "nothing",
    "logging.config": "a log_config file",
    "logging.handlers": "a log_config file (through logging.config)",
    "html.parser": "URL previews of HTML pages",
    "difflib": "the hint for a mistyped config option",
    "getpass": "register-user's password prompt",
}

# Generates the default config (as `generate-config` does), builds the server from
# it, starts its listeners (so start-up jobs run too) and stops it, then prints the
# optional modules that were imported.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path

    import homeserver.__main__
    from homeserver.config import generate_config, load_config
    from homeserver.server import Homeserver

    async def main(directory: Path, port: int) -> None:
        path = directory / "homeserver.yaml"
        generate_config("startup.test", path)
        path.write_text(path.read_text().replace("port: 8008", f"port: {port}", 1))
        server = await Homeserver.build(load_config(path, {}))
        try:
            await server.start_listeners()
        finally:
            await server.close()

    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
    watched = json.loads(sys.argv[3])
    print(json.dumps(sorted(m for m in watched if m in sys.modules)))
    """
)


def test_default_server_does_not_import_optional_dependencies(tmp_path: Path) -> None:
    done = run_python(
        _SCRIPT,
        str(tmp_path),
        str(free_port()),
        json.dumps(sorted(OPTIONAL_MODULES)),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == [], {m: OPTIONAL_MODULES[m] for m in imported}
