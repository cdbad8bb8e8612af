"""``nginx.conf``: a complete nginx main configuration in front of the processes.

nginx takes over the public listeners of the shared configuration (their addresses,
ports and TLS) and sends each path where `routes.ROUTES` says. It runs in the
foreground (``daemon off``, for the supervisor) and keeps its PID file, temporary
files and logs under the output directory, so it needs no root and no system
files: ``nginx -c DIR/nginx.conf -p DIR``.

Sync goes to the sync workers sticky by access token (the Authorization header, else
the ``access_token`` query parameter), so a user's long-polls stay on one process;
federation is sticky by the sending server's address, so one server's transactions
arrive in order at one process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from homeserver.config import HomeserverConfig, ListenerConfig
from homeserver.deploy.routes import READ_METHODS, REPLICATION_PREFIX, ROUTES, Route, choose
from homeserver.deploy.workers import MAIN, WorkersPlan

# Resources nginx serves in place of the main process; other listeners (metrics,
# health or replication alone) stay on the main process.
PUBLIC_RESOURCES: Final = frozenset({"client", "federation", "keys", "media", "openid"})
# Long enough for a long-polling /sync (its timeout is the client's choice).
PROXY_READ_TIMEOUT_S: Final = 600
UPSTREAM_KEEPALIVE: Final = 32

_CLIENT_PREFIX = "^/_matrix/client/(api/v1|r0|v3|unstable)"
_NOT_FOUND = json.dumps({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
_FORBIDDEN = json.dumps({"errcode": "M_FORBIDDEN", "error": "Internal endpoint"})


def public_listeners(config: HomeserverConfig) -> tuple[ListenerConfig, ...]:
    """The shared config's HTTP listeners that nginx takes over."""
    return tuple(
        listener
        for listener in config.listeners
        if listener.type == "http" and listener_resources(listener) & PUBLIC_RESOURCES
    )


def listener_resources(listener: ListenerConfig) -> frozenset[str]:
    return frozenset(name for resource in listener.resources for name in resource.names)


def upstream_name(target: str) -> str:
    return f"hs_{target}"


def _route_targets(plan: WorkersPlan, route: Route) -> tuple[str, str]:
    return choose(plan, route.read), choose(plan, route.write)


def _used_targets(plan: WorkersPlan) -> list[str]:
    targets = {MAIN}
    for route in ROUTES:
        targets.update(_route_targets(plan, route))
    return sorted(targets, key=lambda t: (t != MAIN, t))


def _upstream_block(plan: WorkersPlan, target: str) -> list[str]:
    processes = [plan.main] if target == MAIN else list(plan.holding(target))
    lines = [f"    upstream {upstream_name(target)} {{"]
    if len(processes) > 1:
        if target == "sync":
            lines.append("        hash $hs_access_token consistent;")
        elif target == "events":
            # nginx's plain hash over the writers in stream_writers order is the
            # servers' own choice of a room's writer (room_writer_index)
            lines.append("        hash $hs_room_id;")
        elif target == "federation_inbound":
            lines.append("        hash $remote_addr consistent;")
        else:
            lines.append("        least_conn;")
    lines += [f"        server 127.0.0.1:{p.port};  # {p.name}" for p in processes]
    lines += [f"        keepalive {UPSTREAM_KEEPALIVE};", "    }"]
    return lines


def _method_map(read: str, write: str) -> list[str]:
    lines = [f"    map $request_method ${_split_variable(read, write)} {{"]
    lines += [f"        {method} {upstream_name(read)};" for method in sorted(READ_METHODS)]
    lines += [f"        default {upstream_name(write)};", "    }"]
    return lines


def _split_variable(read: str, write: str) -> str:
    return f"hs_{read}_else_{write}"


def _listen_lines(listener: ListenerConfig) -> list[str]:
    ssl = " ssl" if listener.tls else ""
    lines = []
    for address in listener.bind_addresses:
        host = f"[{address}]" if ":" in address else address
        lines.append(f"        listen {host}:{listener.port}{ssl};")
    return lines


def _server_block(
    plan: WorkersPlan, listener: ListenerConfig, config: HomeserverConfig, cwd: Path
) -> list[str]:
    resources = listener_resources(listener)
    lines = ["    server {", *_listen_lines(listener), "        server_name _;"]
    if listener.tls:
        assert config.tls_certificate_path and config.tls_private_key_path
        lines.append(f"        ssl_certificate {_quote(cwd / config.tls_certificate_path)};")
        lines.append(f"        ssl_certificate_key {_quote(cwd / config.tls_private_key_path)};")
    lines += [
        "",
        f"        location ^~ {REPLICATION_PREFIX} {{",
        "            default_type application/json;",
        f"            return 403 {_quote(_FORBIDDEN)};",
        "        }",
    ]
    for route in ROUTES:
        if not route.resources & resources:
            continue
        read, write = _route_targets(plan, route)
        target = upstream_name(read) if read == write else f"${_split_variable(read, write)}"
        lines += [
            f"        location ~ {_quote(route.pattern)} {{",
            f"            proxy_pass http://{target};",
            "        }",
        ]
    lines.append("        location / {")
    if "client" in resources:
        lines.append(f"            proxy_pass http://{upstream_name(MAIN)};")
    else:
        lines += [
            "            default_type application/json;",
            f"            return 404 {_quote(_NOT_FOUND)};",
        ]
    lines += ["        }", "    }"]
    return lines


def _quote(value: object) -> str:
    """An nginx string argument in double quotes."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render_nginx_conf(plan: WorkersPlan, config: HomeserverConfig, out_dir: Path, cwd: Path) -> str:
    """The text of ``nginx.conf``; `out_dir` and `cwd` are absolute (`cwd` is where
    the shared config's relative paths, such as TLS files, are relative to)."""
    run = out_dir / "nginx"
    logs = out_dir / "logs"
    body_size = max(config.max_upload_size, config.max_request_body_size)
    split_maps = sorted(
        {
            _route_targets(plan, route)
            for route in ROUTES
            if len(set(_route_targets(plan, route))) == 2
        }
    )
    lines = [
        "# Generated by python -m homeserver generate-workers: nginx in front of the",
        "# main process and its workers. Run: nginx -c <this file> -p <its directory>",
        "daemon off;",
        "worker_processes auto;",
        f"pid {_quote(run / 'nginx.pid')};",
        f"error_log {_quote(logs / 'nginx-error.log')} warn;",
        "",
        "events {",
        "    worker_connections 4096;",
        "}",
        "",
        "http {",
        f"    access_log {_quote(logs / 'nginx-access.log')} combined buffer=64k flush=1s;",
        f"    client_body_temp_path {_quote(run / 'client_body')};",
        f"    proxy_temp_path {_quote(run / 'proxy')};",
        f"    fastcgi_temp_path {_quote(run / 'fastcgi')};",
        f"    uwsgi_temp_path {_quote(run / 'uwsgi')};",
        f"    scgi_temp_path {_quote(run / 'scgi')};",
        "    server_tokens off;",
        "    default_type application/octet-stream;",
        f"    client_max_body_size {body_size};  # max_upload_size",
        f"    proxy_read_timeout {PROXY_READ_TIMEOUT_S}s;  # long-polling /sync",
        f"    proxy_send_timeout {PROXY_READ_TIMEOUT_S}s;",
        "    # bodies stream through, never into temporary files (which workers",
        "    # running as another user than the master could not write)",
        "    proxy_request_buffering off;",
        "    proxy_max_temp_file_size 0;",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $http_host;",
        "    # replaced, not appended: the processes trust it (x_forwarded: true)",
        "    proxy_set_header X-Forwarded-For $remote_addr;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "",
        "    # the access token: the Authorization header, else ?access_token=",
        "    map $http_authorization $hs_access_token {",
        "        default $arg_access_token;",
        '        "~^Bearer (?<hs_bearer>.+)$" $hs_bearer;',
        "    }",
        "",
        "    # the room ID in the (decoded) path; other requests are spread at random",
        "    map $uri $hs_room_id {",
        "        default $request_id;",
        f'        "~{_CLIENT_PREFIX}/rooms/(?<hs_room>[^/]+)/" $hs_room;',
        f'        "~{_CLIENT_PREFIX}/(join|knock)/(?<hs_room_joined>![^/]+)$" $hs_room_joined;',
        "    }",
    ]
    for read, write in split_maps:
        lines += ["", *_method_map(read, write)]
    for target in _used_targets(plan):
        lines += ["", *_upstream_block(plan, target)]
    for listener in public_listeners(config):
        lines += ["", *_server_block(plan, listener, config, cwd)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def nginx_dirs(out_dir: Path) -> Iterable[Path]:
    """The directories nginx needs under the output directory."""
    return (out_dir / "nginx", out_dir / "logs")
