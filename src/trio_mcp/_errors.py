"""The one error hierarchy of trio-mcp.

Every failure a pool, portal or toolset reports is an :class:`MCPPoolError`; the
standard-library base beside it lets callers who do not know trio-mcp still catch
the right thing (an unknown name is a ``LookupError``, a timeout a ``TimeoutError``)::

    MCPPoolError
    ├── ConfigError (ValueError)           a server configuration is invalid
    ├── TemplateError (KeyError)           a ${name} in a config string has no variable
    ├── UnknownServerError (LookupError)   no server by that name in this pool
    ├── UnknownToolError (LookupError)     the server has no tool by that name
    ├── InvalidArgumentsError (ValueError) arguments are not plain JSON or do not fit
    │                                      the tool's schema; nothing was sent
    ├── ServerUnavailableError             could not connect: refused, DNS, missing
    │   │                                  command, handshake failure, connect timeout
    │   └── CircuitOpenError               failing fast after repeated failures
    ├── AuthorizationError                 the server wants (other) credentials: HTTP 401/403,
    │                                      or the authorization flow failed
    ├── ServerDisconnectedError            the session was lost mid-call (or, over HTTP,
    │                                      the stream carrying the answer ended without it)
    ├── ServerOverloadedError              too many callers already waiting
    ├── ToolCallTimeout (TimeoutError)     the call's deadline passed
    ├── RequestFailedError                 the server answered with a JSON-RPC error
    │   ├── MalformedResponseError         the answer broke the protocol: unparsable, nested
    │   │   │                              too deeply, or a listing whose pages never end
    │   │   └── ResponseTooLargeError      the answer exceeded the server's max_message_bytes
    │   ├── InvalidResultError             it answered, but with a result that fails the
    │   │   │                              protocol or the tool's output schema
    │   │   └── SkillVerificationError     a skill file's size, digest or frontmatter
    │   │                                  differs from the server's own listing
    │   └── NotSupportedError              the server did not declare the capability
    │                                      the request needs; nothing was sent
    ├── HandlerError                       a client-side handler (sampling, elicitation,
    │                                      roots) failed or refused the server's request
    └── PoolClosedError                    the pool (or portal) is closed or closing
        └── ServerRemovedError             the server was removed from the pool (remove_server)

A tool that *runs* and fails is not an exception: MCP returns it as a
``CallToolResult`` with ``is_error`` set, and so does trio-mcp.

Messages name servers, tools and variables, never header values, tokens,
environment values or URL credentials.
"""

from __future__ import annotations

import re

__all__ = [
    "AuthorizationError",
    "CircuitOpenError",
    "ConfigError",
    "HandlerError",
    "InvalidArgumentsError",
    "InvalidResultError",
    "MCPPoolError",
    "MalformedResponseError",
    "NotSupportedError",
    "PoolClosedError",
    "RequestFailedError",
    "ResponseTooLargeError",
    "ServerDisconnectedError",
    "ServerOverloadedError",
    "ServerRemovedError",
    "ServerUnavailableError",
    "SkillVerificationError",
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
    """A ``${name}`` placeholder (in a header, ``env``, ``args``, ``url`` or ``cwd``) has no
    value in the pool's ``variables``."""

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
    """The arguments (or a name, URI or batch entry) cannot be sent as given, or do not
    match the tool's input schema; nothing was sent. The message names the argument's
    path, never its value."""


class ServerUnavailableError(MCPPoolError):
    """The server could not be reached or the MCP handshake failed; the cause is chained."""


class CircuitOpenError(ServerUnavailableError):
    """The server failed repeatedly; calls fail fast until a probe succeeds."""


# One auth-param of a WWW-Authenticate challenge: name=token or name="quoted string".
_CHALLENGE_PARAMETER = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


def challenge_parameter(challenge: str | None, name: str) -> str | None:
    """One auth-param of a ``WWW-Authenticate`` challenge (quoted or not), or None."""
    for key, quoted, bare in _CHALLENGE_PARAMETER.findall(challenge or ""):
        if key.lower() == name:
            return str(bare or quoted)
    return None


class AuthorizationError(MCPPoolError):
    """The server answered HTTP 401 (authorization required) or 403 (forbidden), or the
    authorization flow for it failed (a refused token request, a declined login).

    Not transient: the same credentials will be refused again, so the pool does not
    retry at once (see :class:`ReconnectPolicy`). The message names the server and what
    it asked for, never a token, code, verifier or secret.
    """

    def __init__(
        self, message: str, *, server: str | None = None, status: int, challenge: str | None = None
    ) -> None:
        super().__init__(message, server=server)
        #: The HTTP status, 401 or 403.
        self.status = status
        #: The server's ``WWW-Authenticate`` challenge, if it sent one.
        self.challenge = challenge

    @property
    def scope(self) -> str | None:
        """The scope the server's challenge asks for, if it names one."""
        return challenge_parameter(self.challenge, "scope")

    @property
    def resource_metadata(self) -> str | None:
        """The URL of the server's protected resource metadata, if its challenge names one."""
        return challenge_parameter(self.challenge, "resource_metadata")


class ServerDisconnectedError(MCPPoolError):
    """The session to the server was lost while the request was in flight, or (over HTTP)
    the stream carrying its answer ended without it. Either way the request may or may
    not have run."""


class ServerOverloadedError(MCPPoolError):
    """Too many callers are already waiting for this server; the call was not queued."""


class ToolCallTimeout(MCPPoolError, TimeoutError):
    """The request's deadline passed; the server was told to cancel it."""


class RequestFailedError(MCPPoolError):
    """The server answered the request with a JSON-RPC error."""

    def __init__(self, message: str, *, server: str | None = None, code: int) -> None:
        super().__init__(message, server=server)
        self.code = code


class InvalidResultError(RequestFailedError):
    """The server answered, but its result cannot be used as it stands: it is malformed
    for the negotiated protocol, or its ``structuredContent`` does not match the tool's
    declared ``outputSchema`` (or the schema itself is unusable).

    The message names the tool and where the result departs from the schema, never the
    values; the underlying validation error is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, server: str | None = None, code: int = -32603) -> None:
        super().__init__(message, server=server, code=code)


class SkillVerificationError(InvalidResultError):
    """A skill file (SEP-2640) read from the server does not match the skill's listing:
    its size, its SHA-256 digest or (for ``SKILL.md``) its YAML frontmatter differ, or
    it cannot be verified at all. Its content was not used."""

    def __init__(self, message: str, *, server: str | None = None, uri: str) -> None:
        super().__init__(message, server=server)
        #: The URI of the file that failed verification.
        self.uri = uri


class NotSupportedError(RequestFailedError):
    """The server did not declare the capability (or extension) the request needs, so
    nothing was sent. ``code`` is JSON-RPC's "method not found" (-32601), what such a
    server would have answered."""

    def __init__(self, message: str, *, server: str | None = None) -> None:
        super().__init__(message, server=server, code=-32601)


class HandlerError(MCPPoolError):
    """A client-side handler failed (raised, timed out, answered the wrong type) or refused.

    The server was answered with a JSON-RPC error naming the failure; this is what the
    caller of the request that led to it sees when that request fails in turn. The
    handler's own exception, if any, is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, server: str | None = None, handler: str) -> None:
        super().__init__(message, server=server)
        #: Which handler: ``"sampling"``, ``"elicitation"`` or ``"roots"``.
        self.handler = handler


class MalformedResponseError(RequestFailedError):
    """The server's answer broke the protocol; the request failed, the session lives on.

    Its answer could not be parsed (not JSON-RPC, or nested deeper than the parser
    allows), or a listing's pages never ended (a cursor repeated, or too many pages).
    """

    def __init__(self, message: str, *, server: str | None = None, code: int = -32603) -> None:
        super().__init__(message, server=server, code=code)


class ResponseTooLargeError(MalformedResponseError):
    """A message from the server exceeded its ``max_message_bytes``; it was discarded unread."""


class PoolClosedError(MCPPoolError):
    """The pool is closed or closing; no request was (or will be) answered."""


class ServerRemovedError(PoolClosedError):
    """The server was removed from the pool (:meth:`MCPPool.remove_server`) while the
    request was waiting or in flight; the request was cancelled."""
