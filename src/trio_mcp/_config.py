"""Server configurations: frozen, validated values that say how to reach one MCP server.

They are checked when constructed, so a typo fails at the line that made it rather
than at the first call. Their reprs are safe to log: header values, environment
values and URL credentials never appear in them.
"""

from __future__ import annotations

import math
import os
import re
import string
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias
from urllib.parse import urlsplit

import attrs

from ._errors import ConfigError
from ._headers import check_braced
from ._redact import redact_url

if TYPE_CHECKING:
    from ._handlers import Handlers

__all__ = [
    "FrozenMap",
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
#: Generous: an SDK-built server sends a 50 MB text result twice over (as content and
#: as structured content), and a message this large already takes a second to decode.
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024


def _names_only(mapping: Mapping[str, str] | None) -> str:
    if mapping is None:
        return "None"
    return "{" + ", ".join(f"{name!r}: '***'" for name in mapping) + "}"


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable mapping of strings: what a frozen config holds.

    Its repr shows the keys only — the values are headers and environment values.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] = MappingProxyType({})) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return _names_only(self)


def _to_str_map(value: Mapping[str, str] | None) -> FrozenMap | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping of strings, got {type(value).__name__}")
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


def _to_headers(value: Mapping[str, str] | None) -> FrozenMap:
    return _to_str_map(value) or FrozenMap()


def _to_args(value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes):
        raise ConfigError("args must be a sequence of strings, not a single string")
    try:
        return tuple(value)
    except TypeError:
        raise ConfigError(f"args must be a sequence of strings, got {type(value).__name__}") from None


def _checked(requirement: str, *validators: Any) -> Any:
    """attrs' own validators, raising :class:`ConfigError` "<field> must be <requirement>".

    attrs' messages repeat the offending value, which may be a secret: never shown.
    """
    inner = attrs.validators.and_(*validators)

    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        try:
            inner(inst, attribute, value)
        except (TypeError, ValueError):
            raise ConfigError(f"{attribute.name} must be {requirement}") from None

    return check


_NUMBER = (
    attrs.validators.instance_of(int | float),
    attrs.validators.not_(attrs.validators.instance_of(bool)),
)
_positive = _checked("a positive number", *_NUMBER, attrs.validators.gt(0))
_whole = _checked(
    "a whole number >= 1",
    attrs.validators.instance_of(int),
    attrs.validators.not_(attrs.validators.instance_of(bool)),
    attrs.validators.ge(1),
)
_fraction = _checked("between 0 and 1", *_NUMBER, attrs.validators.ge(0), attrs.validators.le(1))
_check_timeout = attrs.validators.optional(
    _checked(
        "a positive, finite number of seconds or None",
        *_NUMBER,
        attrs.validators.gt(0),
        attrs.validators.lt(math.inf),
    )
)
_check_mode = _checked(f"one of {_MODES}", attrs.validators.in_(_MODES))
_check_command = _checked(
    "a non-empty string", attrs.validators.instance_of(str), attrs.validators.matches_re(r"(?s).*\S")
)
_check_arg_types = _checked("strings", attrs.validators.deep_iterable(attrs.validators.instance_of(str)))
_check_cwd_type = _checked(
    "a path or None", attrs.validators.optional(attrs.validators.instance_of(str | Path))
)


def _check_args(inst: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    _check_arg_types(inst, attribute, value)
    for index, arg in enumerate(value):
        check_braced(f"args[{index}]", arg)


def _check_cwd(inst: object, attribute: attrs.Attribute[Any], value: str | Path | None) -> None:
    _check_cwd_type(inst, attribute, value)
    if isinstance(value, str):
        check_braced("cwd", value)


# A ${name} placeholder, as BracedTemplate reads it: a URL holding one is checked once filled.
_URL_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_check_health_interval = attrs.validators.optional(_positive)
#: Where a stdio server's stderr goes: these names, a file path, or an open file.
STDERR_CHOICES = ("inherit", "discard", "log")


def _check_stderr(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, str) and value.strip():
        return  # a choice, or a file path
    if isinstance(value, os.PathLike) or callable(getattr(value, "fileno", None)):
        return
    raise ConfigError(f"stderr must be one of {STDERR_CHOICES}, a file path or an open file")


_STRING_MAP = attrs.validators.deep_mapping(
    key_validator=(attrs.validators.instance_of(str), attrs.validators.min_len(1)),
    value_validator=attrs.validators.instance_of(str),
)
_check_str_map = _checked("a mapping of non-empty names to strings", attrs.validators.optional(_STRING_MAP))


def _check_templates(what: str, templates: Mapping[str, str]) -> None:
    for name, template in templates.items():
        if not string.Template(template).is_valid():
            raise ConfigError(
                f"{what} {name!r} has a malformed placeholder: use ${{name}} or $name, and $$ for a literal $"
            )


def _check_headers(inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
    _check_str_map(inst, attribute, value)
    for name, template in value.items():
        if not _HEADER_NAME.match(name):
            raise ConfigError(f"header name {name!r} is not a valid HTTP header name")
        if "\r" in template or "\n" in template:
            raise ConfigError(f"header {name!r} contains a line break")
    _check_templates("header", value)


def _check_env(inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, str] | None) -> None:
    _check_str_map(inst, attribute, value)
    _check_templates("environment variable", value or {})


def _check_url(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str):
        raise ConfigError("url must be a string")
    check_braced(f"url {redact_url(value)!r}", value)
    if _URL_PLACEHOLDER.search(value):
        return  # checked in full once filled, when the session connects
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        # Raised outside the handler: the ValueError names parts of the URL, and even
        # ``from None`` would keep it reachable as ``__context__``.
        parts = None
    if parts is None:
        raise ConfigError(f"url {redact_url(value)!r} is not a valid URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"url {redact_url(value)!r} must be an http:// or https:// URL with a host")


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

    The default stays under the 100 connections of an HTTP session's connection pool
    (each request in flight holds one), so this limit is the one that binds.
    """

    max_concurrent: int = attrs.field(default=64, validator=_whole)
    max_waiting: int = attrs.field(default=1024, validator=_whole)


def _instance_of(cls: type) -> Any:
    return _checked(f"a {cls.__name__}", attrs.validators.instance_of(cls))


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

    def templates(self) -> tuple[str, Mapping[str, str]]:
        """What holds ``${name}`` placeholders in this config, and those values."""
        return "", {}

    def endpoint(self) -> str | None:
        """The URL a remote server is reached at (None for the others)."""
        return None

    def network_attributes(self) -> dict[str, str | int]:
        """How the server is reached, as OpenTelemetry attributes (``network.transport``,
        ``server.address``, ...); never a credential, path or query."""
        return {}

    def fill_placeholders(self, fill: Callable[[str, str], str]) -> Self:
        """This config with ``fill(field, text)`` applied to its other strings (``args``,
        ``url``, ``cwd``); raises :class:`ConfigError` if the result is not valid."""
        return self


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
    env: FrozenMap | None = attrs.field(
        default=None, converter=_to_str_map, validator=_check_env, repr=_names_only
    )
    cwd: str | Path | None = attrs.field(default=None, validator=_check_cwd)
    #: The largest message the server may send (bytes, one JSON-RPC line). A larger
    #: one is discarded unread and its request fails with :class:`ResponseTooLargeError`.
    max_message_bytes: int = attrs.field(default=DEFAULT_MAX_MESSAGE_BYTES, kw_only=True, validator=_whole)
    #: Where the server's stderr goes: ``"inherit"`` (this process's stderr), ``"discard"``,
    #: ``"log"`` (one INFO record per line on the logger ``trio_mcp.server.<name>``), a
    #: file path (appended to) or an open file (anything with a ``fileno()``).
    stderr: str | os.PathLike[str] | Any = attrs.field(
        default="inherit", kw_only=True, validator=_check_stderr
    )

    def templates(self) -> tuple[str, Mapping[str, str]]:
        return "environment variable", self.env or {}

    def network_attributes(self) -> dict[str, str | int]:
        return {"network.transport": "pipe"}

    def fill_placeholders(self, fill: Callable[[str, str], str]) -> Self:
        args = tuple(fill(f"args[{index}]", arg) for index, arg in enumerate(self.args))
        cwd = fill("cwd", self.cwd) if isinstance(self.cwd, str) else self.cwd
        if args == self.args and cwd == self.cwd:
            return self
        return attrs.evolve(self, args=args, cwd=cwd)


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
    headers: FrozenMap = attrs.field(
        factory=FrozenMap, converter=_to_headers, validator=_check_headers, repr=_names_only
    )
    #: How requests are authorized: any ``httpx2.Auth`` (the SDK's OAuth providers
    #: included), or :class:`trio_mcp.OAuth` / :class:`trio_mcp.ClientCredentials`.
    auth: Any = attrs.field(default=None, kw_only=True, validator=_check_auth, repr=_auth_repr)

    def templates(self) -> tuple[str, Mapping[str, str]]:
        return "header", self.headers

    def endpoint(self) -> str | None:
        return self.url

    def network_attributes(self) -> dict[str, str | int]:
        found: dict[str, str | int] = {"network.transport": "tcp", "network.protocol.name": "http"}
        try:
            parts = urlsplit(self.url)
            # Host and port only. A ${name} there is filled from the pool's variables,
            # which are never shown.
            if "$" not in parts.netloc.rpartition("@")[2] and parts.hostname:
                found["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
                found["server.address"] = parts.hostname
        except ValueError:
            pass  # a placeholder where the host should be: not known until connecting
        return found

    def fill_placeholders(self, fill: Callable[[str, str], str]) -> Self:
        url = fill("url", self.url)
        if url == self.url:
            return self
        try:
            return attrs.evolve(self, url=url)
        except ConfigError:
            pass  # raised outside the handler: the first error quotes the filled URL
        raise ConfigError(
            f"url {redact_url(self.url)!r} is not a valid http(s) URL once its placeholders are filled"
        )


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
