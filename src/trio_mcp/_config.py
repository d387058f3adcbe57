"""Server configurations: frozen, validated values that say how to reach one MCP server.

They are checked when constructed, so a typo fails at the line that made it rather
than at the first call. Their reprs are safe to log: header values, environment
values and URL credentials never appear in them.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._handlers import Handlers

__all__ = [
    "InProcessServer",
    "Limits",
    "ReconnectPolicy",
    "ServerConfig",
    "SseServer",
    "StdioServer",
    "StreamableHttpServer",
    "redact_url",
]

Mode: TypeAlias = Literal["auto", "legacy"]
_MODES = ("auto", "legacy")
# RFC 9110 token characters: what an HTTP header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def redact_url(url: str) -> str:
    """The URL with any user-info and query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if "=" in pair else pair for pair in parts.query.split("&") if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _names_only(mapping: Mapping[str, str] | None) -> str:
    if mapping is None:
        return "None"
    return "{" + ", ".join(f"{name!r}: '***'" for name in mapping) + "}"


def _to_str_map(value: Mapping[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping of strings, got {type(value).__name__}")
    return dict(value)


def _to_headers(value: Mapping[str, str] | None) -> dict[str, str]:
    return _to_str_map(value) or {}


def _to_args(value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes):
        raise ConfigError("args must be a sequence of strings, not a single string")
    try:
        return tuple(value)
    except TypeError:
        raise ConfigError(f"args must be a sequence of strings, got {type(value).__name__}") from None


def _check_timeout(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{attribute.name} must be a number of seconds or None")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{attribute.name} must be a positive, finite number of seconds")


def _check_mode(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in _MODES:
        raise ConfigError(f"mode must be one of {_MODES}, got {value!r}")


def _check_str_map(inst: object, attribute: attrs.Attribute[Any], value: dict[str, str] | None) -> None:
    for key, item in (value or {}).items():
        # Values are never echoed: they may be secrets.
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{attribute.name} keys must be non-empty strings")
        if not isinstance(item, str):
            raise ConfigError(f"{attribute.name}[{key!r}] must be a string")


def _check_templates(what: str, templates: Mapping[str, str]) -> None:
    for name, template in templates.items():
        if not string.Template(template).is_valid():
            raise ConfigError(
                f"{what} {name!r} has a malformed placeholder: use ${{name}} or $name, and $$ for a literal $"
            )


def _check_headers(inst: object, attribute: attrs.Attribute[Any], value: dict[str, str]) -> None:
    _check_str_map(inst, attribute, value)
    for name, template in value.items():
        if not _HEADER_NAME.match(name):
            raise ConfigError(f"header name {name!r} is not a valid HTTP header name")
        if "\r" in template or "\n" in template:
            raise ConfigError(f"header {name!r} contains a line break")
    _check_templates("header", value)


def _check_env(inst: object, attribute: attrs.Attribute[Any], value: dict[str, str] | None) -> None:
    _check_str_map(inst, attribute, value)
    _check_templates("environment variable", value or {})


def _check_url(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str):
        raise ConfigError("url must be a string")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        raise ConfigError(f"url {redact_url(value)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"url {redact_url(value)!r} must be an http:// or https:// URL with a host")


def _check_command(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("command must be a non-empty string")


def _check_args(_inst: object, _attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not all(isinstance(arg, str) for arg in value):
        raise ConfigError("args must all be strings")


def _check_cwd(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str | Path):
        raise ConfigError("cwd must be a path or None")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isnan(value):
        raise ConfigError(f"{attribute.name} must be a positive number")


def _whole(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be a whole number >= 1")


def _fraction(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{attribute.name} must be between 0 and 1")


@attrs.frozen
class ReconnectPolicy:
    """How a server's supervisor retries after failed connection attempts.

    After a failure, the next attempt waits ``initial_backoff * multiplier**(n-1)``
    seconds (at most ``max_backoff``), spread by ``±jitter``; callers arriving in that
    window fail at once with the last error instead of piling up. After
    ``failure_threshold`` consecutive failures the circuit opens: calls fail fast with
    :class:`CircuitOpenError` for ``circuit_reset`` seconds, then one probe is let
    through (half-open) and its result closes or re-opens the circuit.
    """

    initial_backoff: float = attrs.field(default=0.1, validator=_positive)
    max_backoff: float = attrs.field(default=5.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    failure_threshold: int = attrs.field(default=5, validator=_whole)
    circuit_reset: float = attrs.field(default=30.0, validator=_positive)


@attrs.frozen
class Limits:
    """Backpressure for one server.

    At most ``max_concurrent`` requests are in flight on its session; at most
    ``max_waiting`` more callers wait for a slot. Past that a call fails at once with
    :class:`ServerOverloadedError` rather than queueing without bound.
    """

    max_concurrent: int = attrs.field(default=64, validator=_whole)
    max_waiting: int = attrs.field(default=1024, validator=_whole)


def _instance_of(cls: type) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls):
            raise ConfigError(f"{attribute.name} must be a {cls.__name__}")

    return check


def _check_health_interval(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _positive(_inst, attribute, value)


def _check_handlers(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    # Imported here: handlers sit in a layer above configuration values.
    from ._handlers import check_handlers

    check_handlers(value)


def _options_last(_cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """Put the shared keyword-only options after a config's own fields (for reprs)."""
    options = [field for field in fields if field.name in _OPTION_NAMES]
    return [field for field in fields if field.name not in _OPTION_NAMES] + options


@attrs.frozen
class _ServerOptions:
    """The options every server configuration takes (keyword-only)."""

    #: Per-server overrides of the pool's defaults (seconds).
    call_timeout: float | None = attrs.field(default=None, kw_only=True, validator=_check_timeout)
    connect_timeout: float | None = attrs.field(default=None, kw_only=True, validator=_check_timeout)
    #: ``"auto"`` negotiates the newest protocol the server speaks; ``"legacy"`` forces
    #: the ``initialize`` handshake (protocol 2025-11-25).
    mode: Mode = attrs.field(default="auto", kw_only=True, validator=_check_mode)
    reconnect: ReconnectPolicy = attrs.field(
        factory=ReconnectPolicy, kw_only=True, validator=_instance_of(ReconnectPolicy)
    )
    limits: Limits = attrs.field(factory=Limits, kw_only=True, validator=_instance_of(Limits))
    #: If set, an idle session is pinged this often (seconds), so a dead server is
    #: found before a caller finds it.
    health_check_interval: float | None = attrs.field(
        default=None, kw_only=True, validator=_check_health_interval
    )
    #: This server's client-side handlers; fields not None override the pool's.
    handlers: Handlers | None = attrs.field(default=None, kw_only=True, validator=_check_handlers)


_OPTION_NAMES = frozenset(field.name for field in attrs.fields(_ServerOptions))


@attrs.frozen(field_transformer=_options_last)
class StdioServer(_ServerOptions):
    """A local MCP server launched as a subprocess, spoken to over its stdin and stdout.

    ``env`` is added to the SDK's safe default environment (``PATH``, ``HOME`` and a few
    more), not to the whole of ``os.environ``: a child sees only what you pass it.
    """

    command: str = attrs.field(validator=_check_command)
    args: tuple[str, ...] = attrs.field(default=(), converter=_to_args, validator=_check_args)
    #: Added to the SDK's safe default environment. Values may hold ``${name}``
    #: placeholders filled from the pool's ``variables`` (``$$`` for a literal ``$``).
    env: dict[str, str] | None = attrs.field(
        default=None, converter=_to_str_map, validator=_check_env, repr=_names_only
    )
    cwd: str | Path | None = attrs.field(default=None, validator=_check_cwd)


def _check_auth(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    # Imported here: authorization flows sit in a layer above configuration values.
    from ._auth import check_auth

    check_auth(value)


def _auth_repr(value: object) -> str:
    return "None" if value is None else f"<{type(value).__name__}>"


@attrs.frozen(field_transformer=_options_last)
class _RemoteServer(_ServerOptions):
    url: str = attrs.field(validator=_check_url, repr=lambda url: repr(redact_url(url)))
    #: Header values may hold ``${name}`` placeholders, filled from the pool's
    #: ``variables`` when the session connects (``string.Template`` rules, ``$$`` escapes).
    headers: dict[str, str] = attrs.field(
        factory=dict, converter=_to_headers, validator=_check_headers, repr=_names_only
    )
    #: How requests are authorized: any ``httpx2.Auth`` (the SDK's OAuth providers
    #: included), or :class:`trio_mcp.OAuth` / :class:`trio_mcp.ClientCredentials`.
    auth: Any = attrs.field(default=None, kw_only=True, validator=_check_auth, repr=_auth_repr)


@attrs.frozen(field_transformer=_options_last)
class StreamableHttpServer(_RemoteServer):
    """A remote MCP server spoken to over Streamable HTTP (the current MCP HTTP transport)."""


@attrs.frozen(field_transformer=_options_last)
class SseServer(_RemoteServer):
    """A remote MCP server spoken to over the older HTTP+SSE transport."""


def _check_in_process(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    from mcp.server import Server
    from mcp.server.mcpserver import MCPServer

    if not isinstance(value, Server | MCPServer):
        raise ConfigError("server must be an mcp.server.Server or MCPServer instance")


@attrs.frozen(eq=False, field_transformer=_options_last)
class InProcessServer(_ServerOptions):
    """An MCP server object running in this process (the SDK's in-memory transport).

    For tests and for measuring client-side cost without any I/O.
    """

    server: Any = attrs.field(validator=_check_in_process, repr=lambda s: f"<{type(s).__name__}>")


ServerConfig: TypeAlias = StdioServer | StreamableHttpServer | SseServer | InProcessServer
SERVER_CONFIG_TYPES = (StdioServer, StreamableHttpServer, SseServer, InProcessServer)
