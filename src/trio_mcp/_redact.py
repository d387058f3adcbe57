"""Keeping secrets out of the text the SDK and its HTTP stack write about our connections.

httpx2 logs every request URL at INFO (user-info and query included), the SDK logs
endpoint URLs, session ids and whole JSON-RPC messages (tool arguments) at DEBUG, and
httpx2's ``HTTPStatusError`` names the full URL. Two guards stop that text:

- :func:`redact_exception` rewrites, in place, the messages of a foreign exception and
  of everything chained to it (causes, contexts, group members, notes). The one
  translation boundary (``_translate``) calls it on every error it wraps, so neither the
  chained cause nor the implicit context of a trio-mcp error carries a secret.
- :func:`install_log_redaction` puts a filter on the loggers of those libraries (and on
  our own), which rewrites each record the same way before any handler sees it.

Patterns catch a secret only where it looks like one (in a URL, beside a sensitive
name). A server can send back what it was sent anywhere — a header value in an error
body, the URL's token in a JSON-RPC error message, a parse error quoting the body — so
the values themselves are known too: while a server is served, :func:`hold_secrets`
keeps its header values and URL credentials (see :func:`secret_values`), and every
redaction replaces them wherever they appear.

A logger's filters only see records logged to that very logger (not its children's,
which propagate past them), so the filter goes on every existing logger of the family;
it is installed when trio-mcp is imported (on the loggers that exist then, and on
httpcore2's, which are named up front) and again whenever a transport opens, which
catches loggers created later.
"""

from __future__ import annotations

import base64
import logging
import re
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)")
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[^:@\[\]]+)(?::[0-9]*)?$")
# A query key worth showing: a short identifier (never a bare token's shape).
_QUERY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,39}$")


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        key, equals, value = pair.partition("=")
        # A bare word (``?TOKEN``), an empty or padding-only value (``?dG9rZW4=``) or an
        # odd key may itself be the secret: only ``key=value`` pairs keep their key.
        keep = equals and value.strip("=") and _QUERY_KEY.match(key)
        pairs.append(f"{key}=***" if keep else "***")
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """The URL as safe to show: scheme, host, port and path, and the query's keys.

    User-info, path parameters (``;x``), query values and the fragment are never shown.
    A malformed URL is read the cautious way: an ``@`` that a strict parser would put in
    the path, query or fragment (a password holding a raw ``/``, ``?`` or ``#``) may end
    a user-info, so then nothing past the scheme is shown. Only an ``@`` that starts a
    path segment (``/@scope/name``, common on MCP hosting services) is read as path.
    """
    scheme = _SCHEME.match(url)
    if scheme is not None and (scheme[2] or scheme[1].lower() in ("http", "https")):
        shown, rest = scheme[0], url[scheme.end() :]
    else:
        shown, rest = "", url  # no scheme (or ``user:pw@host``): all of it is the rest
    end = re.search(r"[/?#]", rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    head_end = re.search(r"[?#]", tail)
    head, query_and_fragment = (
        (tail[: head_end.start()], tail[head_end.start() :]) if head_end else (tail, "")
    )
    if re.search(r"(?<!/)@", head) or "@" in query_and_fragment:
        return shown + "***"
    if "@" in authority:
        shown, authority = shown + "***@", authority.rpartition("@")[2]
    if not _HOST_PORT.match(authority):
        authority = "***" if authority else ""
    path, params, _ = head.partition(";")
    query = query_and_fragment.partition("#")[0][1:]
    return (
        shown + authority + path + (";***" if params else "") + ("?" + _redact_query(query) if query else "")
    )


__all__ = [
    "env_secret_values",
    "hold_secrets",
    "install_log_redaction",
    "redact_exception",
    "redact_text",
    "redact_url",
    "redact_validation_error",
    "release_secrets",
    "secret_values",
]

# Shorter values are not looked for: they would mask common words, and are no secrets.
_MIN_SECRET = 6
# The secret values held (each as often as it was held), and one pattern for them all.
_held: Counter[str] = Counter()
_held_pattern: re.Pattern[str] | None = None


# Standard headers whose values describe a request, never a credential.
_PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-type",
        "mcp-protocol-version",
        "user-agent",
    }
)


def secret_values(url: str, headers: Mapping[str, str]) -> set[str]:
    """What a remote server's requests carry that nothing may show: every header value
    but those of a few standard headers that describe the request (``Accept``,
    ``User-Agent``, …), each also as its credential alone (after a scheme such as
    ``Bearer``), and the URL's user-info (and the Basic credentials made of it), query
    values and path parameters (as written and percent-decoded)."""
    values: set[str] = set()
    for name, value in headers.items():
        if name.lower() in _PLAIN_HEADERS:
            continue  # masking "application/json" everywhere would only blur the logs
        values.add(value.strip())
        values.add(value.strip().partition(" ")[2].strip())
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:  # not a URL once filled: config checks refuse it before any request
        return {value for value in values if len(value) >= _MIN_SECRET}
    found = [username or "", password or "", parts.path.partition(";")[2]]
    if username is not None or password is not None:
        # httpx2 sends the user-info as HTTP Basic credentials; a server may echo those.
        basic = f"{unquote(username or '')}:{unquote(password or '')}"
        found.append(base64.b64encode(basic.encode()).decode())
    found.extend(pair.partition("=")[2] or pair for pair in parts.query.split("&"))
    for value in found:
        values.update((value, unquote(value)))
    return {value for value in values if len(value) >= _MIN_SECRET}


def env_secret_values(env: Mapping[str, str]) -> set[str]:
    """What nothing may show of a stdio server's configured environment: its values."""
    return {value for value in env.values() if len(value) >= _MIN_SECRET}


def hold_secrets(values: Iterable[str]) -> None:
    """Redact ``values`` wherever they appear, until as many :func:`release_secrets`."""
    _held.update(values)
    _compile_held()


def release_secrets(values: Iterable[str]) -> None:
    _held.subtract(values)
    for value in [value for value, count in _held.items() if count <= 0]:
        del _held[value]
    _compile_held()


def _compile_held() -> None:
    global _held_pattern
    longest_first = sorted(_held, key=len, reverse=True)
    _held_pattern = re.compile("|".join(map(re.escape, longest_first))) if longest_first else None


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]*")
_SENSITIVE = r"[\w.-]*(?:auth|cookie|session|token|key|secret|passw)[\w.-]*"
# A sensitive name and its value as a pair in a repr: ``(b'mcp-session-id', b'…')``
# in httpcore2's traces, ``'authorization': '…'`` in a dict.
_NAMED_VALUE = re.compile(rf"(?i)(b?(['\"]){_SENSITIVE}\2\s*[:,]\s*b?(['\"]))(?:(?!\3).)*")
# ``Received session ID: …`` (the SDK, at INFO) and its kin.
_SESSION_ID = re.compile(r"(?i)(session[ _-]?id\s*[:=]\s*)[^\s'\",&)]+")
# The SDK's DEBUG dumps of whole messages, which carry tool arguments and results.
_PAYLOAD = re.compile(r"^(Sending client message|Received server message|SSE message): (.*)$", re.DOTALL)
_METHOD = re.compile(r"\bmethod='([^']*)'")
_ID = re.compile(r"\bid=(\d+|'[^']*')")

_LOGGERS = ("httpx2", "httpcore2", "mcp", "trio_mcp")
# Named up front: the SDK's client session logs as plain "client" (not under "mcp"),
# and httpcore2 creates its loggers only when its modules load, at the first request.
_EXACT_LOGGERS = (
    "client",
    "httpcore2.connection",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.proxy",
    "httpcore2.socks",
)


def redact_text(text: str) -> str:
    """``text`` with held secrets, URLs (:func:`redact_url`) and sensitive named values hidden."""
    held = _held_pattern
    if held is not None:
        text = held.sub("***", text)
    text = _URL.sub(lambda match: redact_url(match[0]), text)
    text = _NAMED_VALUE.sub(r"\1***", text)
    return _SESSION_ID.sub(r"\1***", text)


def _redact_payload(message: str) -> str:
    dump = _PAYLOAD.match(message)
    if dump is None:
        return message
    method, request_id = _METHOD.search(dump[2]), _ID.search(dump[2])
    summary = " ".join(
        part
        for part in (method and method[1], request_id and f"id={request_id[1]}", "(content not logged)")
        if part
    )
    return f"{dump[1]}: {summary}"


def redact_exception(exc: BaseException) -> None:
    """Redact, in place, the messages of ``exc`` and of every exception chained to it.

    Only the text is rewritten (strings in ``args``, notes, an OS error's
    ``strerror``/``filename``, an ``MCPError``'s message and data); types and other
    attributes are left as they are.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        args = tuple(_redact_data(arg) for arg in current.args)
        if args != current.args:
            current.args = args
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [redact_text(note) if isinstance(note, str) else note for note in notes]
        if isinstance(current, OSError):
            for name in ("strerror", "filename", "filename2"):
                value = getattr(current, name)
                if isinstance(value, str):
                    setattr(current, name, redact_text(value))
        if isinstance(current, MCPError):
            current.error.message = redact_text(current.error.message)
            current.error.data = _redact_data(current.error.data)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend((current.__cause__, current.__context__))


def _redact_data(data: Any) -> Any:
    """A JSON-RPC error's ``data`` with every string in it redacted (anything else kept)."""
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, list):
        return [_redact_data(item) for item in data]
    if isinstance(data, dict):
        return {key: _redact_data(value) for key, value in data.items()}
    return data


def redact_validation_error(error: ValidationError) -> ValidationError:
    """``error``, or if its text shows something to redact, a copy with its inputs redacted.

    pydantic's error makes its text from the inputs it quotes, not from its args, so
    :func:`redact_exception` cannot rewrite it in place.
    """
    shown = str(error)
    if redact_text(shown) == shown:
        return error
    errors = error.errors(include_url=False)
    try:
        return ValidationError.from_exception_data(
            error.title,
            [
                {"type": e["type"], "loc": e["loc"], "input": _redact_data(e["input"]), **_ctx(e)}  # type: ignore[typeddict-item]
                for e in errors
            ],
        )
    except (TypeError, ValueError, KeyError):  # an error type that wants what it cannot get back
        return ValidationError.from_exception_data(
            error.title,
            [
                {
                    "type": PydanticCustomError("redacted", "the input is not shown"),
                    "loc": e["loc"],
                    "input": "***",
                }
                for e in errors
            ],
        )


def _ctx(error: Any) -> dict[str, Any]:
    return {"ctx": error["ctx"]} if "ctx" in error else {}


class _RedactingFilter(logging.Filter):
    """Rewrites a record's message and exception so that no secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it when it is emitted
            return True
        redacted = _redact_payload(redact_text(message))
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info is not None and record.exc_info[1] is not None:
            redact_exception(record.exc_info[1])
            # Some exceptions make their text from more than their args (pydantic's
            # ValidationError quotes the input): if a secret survives in the traceback,
            # the record carries the redacted text instead of the exception.
            shown = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            redacted = redact_text(shown)
            if redacted != shown:
                record.exc_info, record.exc_text = None, redacted
        return True


_FILTER = _RedactingFilter()
# How many loggers existed when the filter was last put on (see install_log_redaction).
_seen_loggers = -1
_placeholders: list[str] = []
_covered: set[str] = set()


def install_log_redaction() -> None:
    """Put the redacting filter on every logger of httpx2, httpcore2, the SDK and trio-mcp.

    Idempotent and cheap (a connect calls it, and each server adds a logger of its own):
    only loggers not seen before are looked at.
    """
    global _seen_loggers
    known = logging.Logger.manager.loggerDict
    if len(known) == _seen_loggers and not any(
        isinstance(known.get(n), logging.Logger) for n in _placeholders
    ):
        return  # no logger was created since the last time (loggers are never removed)
    prefixes = tuple(f"{name}." for name in _LOGGERS)
    if not _covered:
        for name in (*_LOGGERS, *_EXACT_LOGGERS):
            _cover(logging.getLogger(name))
    _placeholders.clear()
    # Counted before the snapshot: a logger another thread adds meanwhile is seen next time.
    count = len(known)
    for name, logger in list(known.items()):
        if name in _covered or not name.startswith(prefixes):
            continue
        if isinstance(logger, logging.Logger):
            _cover(logger)
        else:
            # A placeholder (the parent of a logger, not yet asked for) becomes a logger in place.
            _placeholders.append(name)
    _seen_loggers = count


def _cover(logger: logging.Logger) -> None:
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    _covered.add(logger.name)


install_log_redaction()
