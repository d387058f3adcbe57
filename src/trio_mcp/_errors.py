"""The one error hierarchy of trio-mcp.

Every failure a pool, portal or toolset reports is an :class:`MCPPoolError`; the
standard-library base beside it lets callers who do not know trio-mcp still catch
the right thing (an unknown name is a ``LookupError``, a timeout a ``TimeoutError``)::

    MCPPoolError
    ├── ConfigError (ValueError)           a server configuration is invalid
    ├── TemplateError (KeyError)           a ${name} in a header has no variable
    ├── UnknownServerError (LookupError)   no server by that name in this pool
    ├── UnknownToolError (LookupError)     the server has no tool by that name
    ├── InvalidArgumentsError (ValueError) arguments do not fit the tool's schema
    ├── ServerUnavailableError             could not connect: refused, DNS, missing
    │   │                                  command, handshake failure, connect timeout
    │   └── CircuitOpenError               failing fast after repeated failures
    ├── AuthorizationError                 the server wants (other) credentials: HTTP 401/403
    ├── ServerDisconnectedError            the session was lost mid-call
    ├── ServerOverloadedError              too many callers already waiting
    ├── ToolCallTimeout (TimeoutError)     the call's deadline passed
    ├── RequestFailedError                 the server answered with a JSON-RPC error
    └── PoolClosedError                    the pool (or portal) is closed or closing

A tool that *runs* and fails is not an exception: MCP returns it as a
``CallToolResult`` with ``is_error`` set, and so does trio-mcp.

Messages name servers, tools and variables, never header values, tokens,
environment values or URL credentials.
"""

from __future__ import annotations

__all__ = [
    "AuthorizationError",
    "CircuitOpenError",
    "ConfigError",
    "InvalidArgumentsError",
    "MCPPoolError",
    "PoolClosedError",
    "RequestFailedError",
    "ServerDisconnectedError",
    "ServerOverloadedError",
    "ServerUnavailableError",
    "TemplateError",
    "ToolCallTimeout",
    "UnknownServerError",
    "UnknownToolError",
]


class MCPPoolError(Exception):
    """Base class of every error trio-mcp raises."""

    #: The pool's name for the server concerned, when there is one.
    server: str | None

    def __init__(self, message: str, *, server: str | None = None) -> None:
        super().__init__(message)
        self.server = server

    def __str__(self) -> str:
        # KeyError's str() would quote the message; keep every error readable.
        return str(self.args[0]) if self.args else ""


class ConfigError(MCPPoolError, ValueError):
    """A server configuration (or pool option) is invalid."""


class TemplateError(MCPPoolError, KeyError):
    """A ``${name}`` placeholder in a header has no value in the pool's ``variables``."""

    def __init__(self, message: str, *, server: str | None = None, variable: str) -> None:
        super().__init__(message, server=server)
        self.variable = variable


class UnknownServerError(MCPPoolError, LookupError):
    """The pool has no server by that name."""


class UnknownToolError(MCPPoolError, LookupError):
    """The server does not offer a tool by that name."""

    def __init__(self, message: str, *, server: str | None = None, tool: str) -> None:
        super().__init__(message, server=server)
        self.tool = tool


class InvalidArgumentsError(MCPPoolError, ValueError):
    """The arguments do not match the tool's input schema; nothing was sent."""


class ServerUnavailableError(MCPPoolError):
    """The server could not be reached or the MCP handshake failed; the cause is chained."""


class CircuitOpenError(ServerUnavailableError):
    """The server failed repeatedly; calls fail fast until a probe succeeds."""


class AuthorizationError(MCPPoolError):
    """The server answered HTTP 401 (authorization required) or 403 (forbidden).

    Not transient: the same credentials will be refused again, so no retry is made.
    """

    def __init__(
        self, message: str, *, server: str | None = None, status: int, challenge: str | None = None
    ) -> None:
        super().__init__(message, server=server)
        #: The HTTP status, 401 or 403.
        self.status = status
        #: The server's ``WWW-Authenticate`` challenge, if it sent one.
        self.challenge = challenge


class ServerDisconnectedError(MCPPoolError):
    """The session to the server was lost while the request was in flight."""


class ServerOverloadedError(MCPPoolError):
    """Too many callers are already waiting for this server; the call was not queued."""


class ToolCallTimeout(MCPPoolError, TimeoutError):
    """The request's deadline passed; the server was told to cancel it."""


class RequestFailedError(MCPPoolError):
    """The server answered the request with a JSON-RPC error."""

    def __init__(self, message: str, *, server: str | None = None, code: int) -> None:
        super().__init__(message, server=server)
        self.code = code


class PoolClosedError(MCPPoolError):
    """The pool is closed or closing; no request was (or will be) answered."""
