"""Reading the server lists other MCP clients already use.

Two shapes are understood: the ``mcpServers`` object of Claude Desktop, Cursor and
friends, and VS Code's ``servers`` object (``.vscode/mcp.json``)::

    {"mcpServers": {"files": {"command": "npx", "args": ["-y", "server-files"], "env": {}},
                    "search": {"url": "https://...", "type": "http", "headers": {}}}}

    {"servers": {"files": {"type": "stdio", "command": "npx", "args": [...]},
                 "search": {"type": "sse", "url": "https://..."}}}

A bare mapping of names to entries works too. ``command``/``args``/``env``/``cwd``
make a :class:`StdioServer`; ``url`` with ``type`` ``"http"``/``"streamable-http"``
(the default) or ``"sse"`` (plus ``headers``) a remote server, authorized as its
``auth`` object says: ``{"type": "oauth", "scopes": [...]}`` for a person's login, or
``{"type": "client_credentials", "client_id": ..., "client_secret": "${env:SECRET}"}``
(see :class:`trio_mcp.OAuth` and :class:`trio_mcp.ClientCredentials`). Placeholders in
``args``, ``url``, ``cwd``, ``env`` and ``headers`` stay placeholders, filled from the
pool's ``variables`` when a session connects: ``${NAME}`` as is, and VS Code's
``${env:NAME}`` and ``${input:NAME}`` become ``${NAME}``. To fill them from the
environment, pass ``variables=os.environ``. Keys this library does not use are
ignored, as those clients ignore keys they do not know.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._config import ServerConfig, SseServer, StdioServer, StreamableHttpServer
from ._errors import ConfigError

__all__ = ["load_servers"]

_VSCODE_PLACEHOLDER = re.compile(r"\$\{(?:env|input):([A-Za-z_][A-Za-z0-9_]*)\}")
_HTTP_TYPES = ("http", "streamable-http", "streamable_http", "streamablehttp")


def _placeholders(value: str) -> str:
    return _VSCODE_PLACEHOLDER.sub(r"${\1}", value)


def _string_map(name: str, field: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"server {name!r}: field {field!r} must be an object of strings")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise ConfigError(f"server {name!r}: field {field}[{key!r}] must be a string")
        result[str(key)] = _placeholders(str(item))
    return result


def _auth(value: Any) -> Any:
    if value is None:
        return None
    # Imported here: authorization flows sit in a layer above configuration values.
    from ._auth import auth_from_mapping

    return auth_from_mapping(value, _placeholders)


def _entry(name: str, entry: Any, stderr: Any) -> ServerConfig:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"server {name!r}: expected an object, got {type(entry).__name__}")
    kind = entry.get("type", entry.get("transport"))
    if kind is not None and not isinstance(kind, str):
        raise ConfigError(f"server {name!r}: field 'type' must be a string")
    try:
        if "command" in entry and kind in (None, "stdio"):
            args = entry.get("args", [])
            if not isinstance(args, list):
                raise ConfigError(f"server {name!r}: field 'args' must be a list of strings")
            return StdioServer(
                entry["command"],
                [_placeholders(arg) if isinstance(arg, str) else arg for arg in args],
                env=_string_map(name, "env", entry.get("env")),
                cwd=_placeholders(cwd) if isinstance(cwd := entry.get("cwd"), str) else cwd,
                stderr=stderr,
            )
        if "url" in entry:
            headers = _string_map(name, "headers", entry.get("headers")) or {}
            url = _placeholders(entry["url"]) if isinstance(entry["url"], str) else entry["url"]
            auth = _auth(entry.get("auth"))
            if kind is None or kind.lower() in _HTTP_TYPES:
                return StreamableHttpServer(url, headers, auth=auth)
            if kind.lower() == "sse":
                return SseServer(url, headers, auth=auth)
            raise ConfigError(
                f"server {name!r}: field 'type' is {kind!r}; expected 'http', 'streamable-http' or 'sse'"
            )
    except ConfigError as error:
        message = str(error)
        if message.startswith(f"server {name!r}"):
            raise
        raise ConfigError(f"server {name!r}: {message}", server=name) from None
    if kind == "stdio":
        raise ConfigError(f"server {name!r}: field 'command' is required for a stdio server", server=name)
    raise ConfigError(f"server {name!r}: needs a 'command' (stdio) or a 'url' (remote server)", server=name)


def load_servers(
    source: str | os.PathLike[str] | Mapping[str, Any], *, stderr: Any = "inherit"
) -> dict[str, ServerConfig]:
    """Server configurations from a JSON file (path) or an already parsed mapping.

    ``stderr`` is where every stdio server's stderr goes (see :class:`StdioServer`).
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"config file {str(path)!r} is not valid JSON (line {error.lineno}: {error.msg})"
            ) from None
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ConfigError("a server config must be a JSON object")
    servers = data.get("mcpServers", data.get("servers", data))
    if not isinstance(servers, Mapping):
        raise ConfigError("'mcpServers' (or 'servers') must be an object of named servers")
    return {str(name): _entry(str(name), entry, stderr) for name, entry in servers.items()}
