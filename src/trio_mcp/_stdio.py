"""The pool's stdio transport: a server subprocess spoken to in newline-delimited JSON-RPC.

It yields what the SDK's ``stdio_client`` yields (a read and a write stream of
``SessionMessage``, the same environment rules) and replaces it because that one:

* re-joins its whole buffer for every chunk it reads, so an n-byte message costs
  O(n²) (50 MB took 40-100 s); here a line is joined once, when its newline arrives;
* notices a server's death only by end-of-file on stdout, which a helper that inherited
  the pipe holds back; here a task waits on the process itself;
* ends the process group only if the server outlives a grace period after stdin
  closes, so the helpers of a server that exits on EOF, or crashes, are orphaned; here
  the group is ended whenever the server exits, however it exits;
* logs each unparsable line as a traceback at ERROR, content included, and drops an
  unparsable response, so its caller waits out ``call_timeout``.

A line longer than ``max_message_bytes`` is discarded as it streams past; framing
stays in step, since JSON text never holds a raw newline. A response that is
discarded or cannot be parsed fails *its* request with a typed error, handed to the
caller as the ``data`` of a JSON-RPC error made up here (a Python object, which no
server can forge; :mod:`._translate` unwraps it). If its id cannot be found the
session ends instead, so that no caller waits for an answer that will never come.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import attrs
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client._transport import TransportStreams
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage
from mcp_types import (
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from ._errors import (
    InvalidArgumentsError,
    MalformedResponseError,
    MCPPoolError,
    ResponseTooLargeError,
    ServerUnavailableError,
)

__all__ = ["stdio_transport"]

logger = logging.getLogger("trio_mcp")

_READ_SIZE = 1 << 20
# Messages parsed ahead of the session while it is busy (at most this many times
# max_message_bytes held): several responses in one chunk are handed over without the
# reader waiting for the session between them (~3 % more calls/s at 8 callers).
_READ_AHEAD = 4
# Notifications are queued behind a full pipe without their sender waiting while the
# backlog holds at most this many messages (beyond it they wait, as requests do).
_NOTIFICATIONS_QUEUED = 1024
# Bytes kept from each end of a line that cannot be used, to look for its id.
_PEEK = 1024
# Seconds: for the server to exit after stdin closes; for its group to go after
# SIGTERM (then SIGKILL) and after SIGKILL; for the writer to flush on close.
_EXIT_GRACE = 2.0
_TERM_GRACE = 2.0
_KILL_GRACE = 2.0
_FLUSH_GRACE = 0.5
_POLL = 0.01
# At most one warning about non-JSON lines on stdout this often (seconds).
_NOISE_INTERVAL = 60.0
# With stderr="log": a line longer than this is logged in pieces of this size.
_MAX_LOG_LINE = 64 * 1024

_STRING = rb'"(?:[^"\\]|\\.)*"'
_SCALAR = _STRING + rb"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null"
# One top-level "key": value pair from the front of an object; the value group is
# empty when the value is an object or array (or cut off).
_OPEN = re.compile(rb"\s*\{")
_LEADING_PAIR = re.compile(rb"\s*(" + _STRING + rb")\s*:\s*(?:(" + _SCALAR + rb")\s*([,}]))?")
# The scalar pairs that close an object: `, "key": scalar ... }` at the very end.
_TRAILING_PAIRS = re.compile(rb"(?:,\s*" + _STRING + rb"\s*:\s*(?:" + _SCALAR + rb")\s*)+\}\s*\Z")
_TRAILING_PAIR = re.compile(rb",\s*(" + _STRING + rb")\s*:\s*(" + _SCALAR + rb")")


def _decode(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:  # an invalid escape or encoding: such a key or id is unreadable
        return None


def _visible_pairs(head: bytes | bytearray, tail: bytes | bytearray) -> dict[object, bytes | None]:
    """The top-level keys of a JSON object readable from its two ends (scalar values only).

    A JSON-RPC message has at most one nested top-level value (``params``, ``result``
    or ``error``), so every other key is before it, in ``head``, or after it, in ``tail``.
    """
    pairs: dict[object, bytes | None] = {}
    opened = _OPEN.match(head)
    if opened is None:
        return pairs
    position = opened.end()
    while (pair := _LEADING_PAIR.match(head, position)) is not None:
        pairs[_decode(pair[1])] = pair[2]
        if pair[2] is None or pair[3] == b"}":
            break
        position = pair.end()
    if (closing := _TRAILING_PAIRS.search(tail)) is not None:
        for pair in _TRAILING_PAIR.finditer(closing[0]):
            pairs[_decode(pair[1])] = pair[2]
    return pairs


def response_id(head: bytes | bytearray, tail: bytes | bytearray) -> tuple[bool, RequestId | None]:
    """Whether an unusable line looks like a response, and its id if one can be read."""
    pairs = _visible_pairs(head, tail)
    if "method" in pairs or not pairs.keys() & {"result", "error", "id"}:
        return False, None
    raw = pairs.get("id")
    value = _decode(raw) if raw is not None else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return True, None
    return True, value


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a member we may not signal (or a zombie on some systems) is still a member
    return True


async def end_process_group(process: trio.Process) -> None:
    """SIGTERM the server's group, SIGKILL whatever is left after a grace period; bounded.

    The server leads the group (a new session), so its pid is the group's id, valid
    while any member lives, even after the leader itself is reaped.
    """
    pgid = process.pid
    for signum, grace in ((signal.SIGTERM, _TERM_GRACE), (signal.SIGKILL, _KILL_GRACE)):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        with trio.move_on_after(grace):  # noqa: ASYNC912 (a gone group needs no wait)
            # No event tells when a whole group is gone: poll (only while one is ending).
            while _group_alive(pgid):
                _ = process.returncode  # reaps the leader: as a zombie it would count
                await trio.sleep(_POLL)
            return


def _carrier(request_id: RequestId, error: MCPPoolError, code: int) -> SessionMessage:
    """A JSON-RPC error for ``request_id`` that carries ``error`` to its caller."""
    data = ErrorData(code=code, message=str(error), data=error)
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=data))


@attrs.define(eq=False)
class _Noise:
    """Lines on stdout that are not JSON-RPC: one short warning per burst, at most
    once per ``_NOISE_INTERVAL``, never the content (it may hold secrets)."""

    server: str
    in_burst: bool = False
    unreported: int = 0
    last_warning: float = -math.inf

    def line(self, size: int) -> None:
        now = trio.current_time()
        if not self.in_burst and now - self.last_warning >= _NOISE_INTERVAL:
            logger.warning(
                "server %r: ignoring lines on stdout that are not JSON-RPC (this one %d bytes, "
                "%d more since the last warning; contents are not logged)",
                self.server,
                size,
                self.unreported,
            )
            self.last_warning = now
            self.unreported = 0
        else:
            self.unreported += 1
        self.in_burst = True


class _Writer:
    """The session's write stream: a message goes to the server's stdin straight from
    the sender's task, with no hand-off to another task, when the pipe takes it whole
    at once — the usual case, and then ``send`` does not even yield.

    A message the pipe cannot take at once (it is full, or the message is longer than
    the pipe's atomic write) waits in ``backlog`` for the link's writer task, and so does
    every message after it, to keep the order; its sender waits until it is written
    (the pipe's backpressure) — unless it is a notification, which is only queued. A
    partly written message is always finished, even if its sender is cancelled, so
    framing never breaks.
    """

    __slots__ = ("_fd", "_link", "backlog", "broken", "closed", "wake")

    def __init__(self, link: _Link) -> None:
        self._link = link
        stdin = link.process.stdin
        assert isinstance(stdin, trio.lowlevel.FdStream)
        self._fd = stdin.fileno()
        self.backlog: collections.deque[tuple[bytes, trio.Event]] = collections.deque()
        self.wake = trio.Event()
        self.closed = False
        self.broken = False

    async def send(self, item: SessionMessage) -> None:
        if self.closed:
            raise anyio.BrokenResourceError if self.broken else anyio.ClosedResourceError
        link = self._link
        try:
            data = item.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        except ValueError as exc:  # unencodable: lone surrogates and the like
            await link.refuse(item, exc)
            return
        written = 0
        if not self.backlog:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                # stdin is gone (the server closed it or died): end the session so no request hangs.
                self.closed = self.broken = True
                link.end_session()
                raise anyio.BrokenResourceError from None
            if written == len(data):
                return
            data = data[written:]
        sent = trio.Event()
        entry = (data, sent)
        self.backlog.append(entry)
        self.wake.set()
        if isinstance(item.message, JSONRPCNotification) and len(self.backlog) <= _NOTIFICATIONS_QUEUED:
            # Nobody waits for a notification to be written: the SDK sends the courtesy
            # ``notifications/cancelled`` of a timed-out call shielded, for up to 5 s,
            # which behind a full pipe would hold the call that long past its deadline.
            return
        try:
            await sent.wait()
        finally:
            # A message not begun is withdrawn when its sender gives up (as the memory
            # stream the SDK's own transports use would do); one begun must be finished.
            if not sent.is_set() and not written and self.backlog[0] is not entry:
                self.backlog.remove(entry)
        if self.broken:
            raise anyio.BrokenResourceError

    def abandon(self) -> None:
        """The session is being closed: release every sender now, as if the pipe broke.

        Only the message being written (it may be partly out) is still finished, so
        that the server never reads half a line.
        """
        self.closed = self.broken = True
        while len(self.backlog) > 1:
            self.backlog.pop()[1].set()
        if self.backlog:
            self.backlog[0][1].set()
        self.wake.set()

    async def aclose(self) -> None:
        """No more messages: the writer task finishes the backlog, then ends."""
        self.closed = True
        self.wake.set()

    async def __aenter__(self) -> _Writer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@attrs.define(eq=False)
class _Link:
    """The three tasks (reader, writer, watcher) around one server process."""

    server: str
    process: trio.Process
    limit: int
    read_send: MemoryObjectSendStream[SessionMessage | Exception]
    read_receive: MemoryObjectReceiveStream[SessionMessage | Exception]
    noise: _Noise
    writer: _Writer = attrs.field(init=False)
    #: One shielded scope per task: cancelling the session's owner must not stop the
    #: tasks that shutdown() relies on; shutdown() cancels them when it is done.
    scopes: list[trio.CancelScope] = attrs.field(factory=list)
    exited: trio.Event = attrs.field(factory=trio.Event)
    reader_done: trio.Event = attrs.field(factory=trio.Event)
    writer_done: trio.Event = attrs.field(factory=trio.Event)
    stderr_done: trio.Event = attrs.field(factory=trio.Event)
    writer_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def __attrs_post_init__(self) -> None:
        self.writer = _Writer(self)

    def start(self, nursery: trio.Nursery, task: Callable[[], Awaitable[None]]) -> None:
        scope = trio.CancelScope(shield=True)
        self.scopes.append(scope)  # now, so that stop() reaches a task not yet running

        async def run() -> None:
            with scope:
                await task()

        nursery.start_soon(run, name=task)

    def stop(self) -> None:
        for scope in self.scopes:
            scope.cancel()

    # -- server to client -----------------------------------------------------------

    async def deliver(self, message: SessionMessage) -> None:
        try:
            try:
                # Handed straight over when the session waits for it (the usual case).
                self.read_send.send_nowait(message)
            except anyio.WouldBlock:
                await self.read_send.send(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the session is gone; the reader keeps draining so the server can exit

    def end_session(self) -> None:
        """End-of-stream for the session: it is lost, and every caller hears so at once."""
        self.read_send.close()

    async def read(self) -> None:
        """Split stdout into lines in linear time; a line over the limit is skipped."""
        assert self.process.stdout is not None
        parts: list[bytes | bytearray] = []
        size = 0
        head: bytes | bytearray = b""
        tail: bytes | bytearray = b""
        discarding = False
        try:
            while chunk := await self.process.stdout.receive_some(_READ_SIZE):
                start = 0
                while True:
                    end = chunk.find(b"\n", start)
                    piece = chunk[start:] if end < 0 else chunk[start:end]
                    if discarding:
                        tail = (tail + piece)[-_PEEK:]
                        size += len(piece)
                    elif size + len(piece) > self.limit:
                        joined = b"".join([*parts, piece])
                        head, tail, parts, discarding = joined[:_PEEK], joined[-_PEEK:], [], True
                        size += len(piece)
                    else:
                        parts.append(piece)
                        size += len(piece)
                    if end < 0:
                        break
                    if discarding:
                        await self.unusable(head, tail, size, "too large")
                    else:
                        await self.line(b"".join(parts))
                    parts, size, discarding, start = [], 0, False, end + 1
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            pass  # our own shutdown closed the pipe
        finally:
            self.end_session()
            self.reader_done.set()

    async def line(self, line: bytes | bytearray) -> None:
        if not line.strip():
            return
        try:
            message = jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValidationError as exc:
            # Never log the error itself: its text quotes the line.
            deep = any(
                "recursion limit" in problem["msg"]
                for problem in exc.errors(include_url=False, include_context=False, include_input=False)
            )
            await self.unusable(line[:_PEEK], line[-_PEEK:], len(line), "too deep" if deep else "malformed")
            return
        self.noise.in_burst = False
        await self.deliver(SessionMessage(message))

    async def unusable(self, head: bytes | bytearray, tail: bytes | bytearray, size: int, why: str) -> None:
        """A line that cannot be delivered: fail its request, or skip it, or end the session."""
        is_response, request_id = response_id(head, tail)
        if why == "malformed" and request_id is None:
            self.noise.line(size)
            return
        error: MalformedResponseError
        if why == "too large":
            error = ResponseTooLargeError(
                f"server {self.server!r} sent a message of {size} bytes, more than its "
                f"max_message_bytes ({self.limit}); it was discarded unread",
                server=self.server,
            )
        elif why == "too deep":
            error = MalformedResponseError(
                f"server {self.server!r} sent a message nested too deeply to parse", server=self.server
            )
        else:
            error = MalformedResponseError(
                f"server {self.server!r} answered with a message that is not valid JSON-RPC",
                server=self.server,
                code=-32700,
            )
        if request_id is not None:
            await self.deliver(_carrier(request_id, error, error.code))
        elif is_response:
            logger.warning("%s; whose answer it was is unknown, so the session ends", error)
            self.end_session()
        else:
            logger.warning("%s (not a response, so no call failed)", error)

    async def log_stderr(self) -> None:
        """With ``stderr="log"``: one INFO record per line, on ``trio_mcp.server.<name>``."""
        assert self.process.stderr is not None
        log = logging.getLogger(f"trio_mcp.server.{self.server}")
        pending = b""

        def emit(line: bytes) -> None:
            log.info("%s", line.decode("utf-8", "replace").rstrip("\r"))

        try:
            while chunk := await self.process.stderr.receive_some(_READ_SIZE):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    emit(line)
                while len(pending) > _MAX_LOG_LINE:
                    emit(pending[:_MAX_LOG_LINE])
                    pending = pending[_MAX_LOG_LINE:]
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            pass  # our own shutdown closed the pipe
        finally:
            if pending:
                emit(pending)
            self.stderr_done.set()

    # -- client to server -----------------------------------------------------------

    async def write(self) -> None:
        """Write what the senders could not write at once, in order (see :class:`_Writer`)."""
        assert self.process.stdin is not None
        writer = self.writer
        backlog = writer.backlog
        try:
            with self.writer_scope:
                while True:
                    if backlog:
                        data, sent = backlog[0]
                        await self.process.stdin.send_all(data)
                        backlog.popleft()
                        sent.set()
                        continue
                    if writer.closed:
                        break
                    wake = writer.wake = trio.Event()
                    await wake.wait()
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            # stdin is gone (the server closed it or died): end the session so no request hangs.
            writer.broken = True
            self.end_session()
        finally:
            writer.closed = True
            while backlog:  # nobody will write these: their senders must not wait forever
                backlog.popleft()[1].set()
            self.writer_done.set()

    async def refuse(self, item: SessionMessage, exc: ValueError) -> None:
        """A message that cannot be encoded was not sent; its request fails, typed."""
        message = item.message
        if not isinstance(message, JSONRPCRequest):
            logger.warning(
                "server %r: a %s could not be encoded and was not sent", self.server, type(message).__name__
            )
            return
        error = InvalidArgumentsError(
            f"request {message.method!r} to server {self.server!r} cannot be encoded as JSON "
            f"({type(exc).__name__}); nothing was sent",
            server=self.server,
        )
        await self.deliver(_carrier(message.id, error, -32602))

    # -- the process ------------------------------------------------------------------

    async def watch(self) -> None:
        """Wait for the server to exit, then end its group: helpers must not outlive it."""
        await self.process.wait()
        self.exited.set()
        await end_process_group(self.process)
        # With the group gone, stdout ends; a helper that left the group may still hold it.
        with trio.move_on_after(_KILL_GRACE):
            await self.reader_done.wait()
        self.end_session()

    async def shutdown(self) -> None:
        """Flush, close stdin, let the server exit, end its group; every wait is bounded."""
        with trio.move_on_after(_FLUSH_GRACE):
            await self.writer_done.wait()
        self.writer_scope.cancel()
        self.writer.closed = True  # no sender may touch the fd once it is closed
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        # The reader keeps draining stdout so a server blocked writing can exit.
        self.read_receive.close()
        with trio.move_on_after(_EXIT_GRACE):
            await self.exited.wait()
        await end_process_group(self.process)
        with trio.move_on_after(_KILL_GRACE):
            await self.reader_done.wait()
        with trio.move_on_after(_KILL_GRACE):
            await self.stderr_done.wait()


def _stderr() -> int | None:
    """Where the server's stderr goes: ours, or (if ours has no descriptor) inherited."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _stderr_target(server: str, stderr: object) -> tuple[int | None, int | None]:
    """The child's stderr (a descriptor, ``PIPE``, or None: ours) and a descriptor to close after the spawn."""
    if stderr == "inherit":
        return _stderr(), None
    if stderr == "discard":
        return subprocess.DEVNULL, None
    if stderr == "log":
        return subprocess.PIPE, None
    if isinstance(stderr, str | os.PathLike):
        try:
            fd = os.open(stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            reason = exc.strerror
        else:
            return fd, fd
        raise ServerUnavailableError(
            f"server {server!r}: cannot open its stderr file {os.fspath(stderr)!r} ({reason})", server=server
        )
    fileno = getattr(stderr, "fileno", None)
    assert callable(fileno)  # the config's validator saw to it
    return int(fileno()), None


@asynccontextmanager
async def stdio_transport(
    server: str,
    command: str,
    args: list[str],
    env: dict[str, str] | None,
    cwd: str | Path | None,
    max_message_bytes: int,
    *,
    stderr: object = "inherit",
    closing: list[Callable[[], None]] | None = None,
) -> AsyncIterator[TransportStreams]:
    """Run ``command`` in a new session (its own process group) and speak JSON-RPC to it.

    ``env`` is added to the SDK's safe default environment, as ``stdio_client`` does.
    ``stderr`` is the config's choice (see :class:`StdioServer`). A function is added to
    ``closing`` that the session calls when it begins to close: from then on no sender
    waits for the pipe (see :meth:`_Writer.abandon`).
    """
    child_stderr, ours = _stderr_target(server, stderr)
    try:
        process = await trio.lowlevel.open_process(
            [command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=child_stderr,
            env=get_default_environment() | (env or {}),
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if ours is not None:
            os.close(ours)
    read_send, read_receive = anyio.create_memory_object_stream[SessionMessage | Exception](_READ_AHEAD)
    link = _Link(
        server,
        process,
        max_message_bytes,
        read_send,
        read_receive,
        _Noise(server),
    )
    try:
        async with trio.open_nursery() as nursery:
            for task in (link.read, link.write, link.watch):
                link.start(nursery, task)
            if closing is not None:
                closing.append(link.writer.abandon)
            if process.stderr is not None:
                link.start(nursery, link.log_stderr)
            else:
                link.stderr_done.set()
            try:
                yield read_receive, link.writer  # duck-types the SDK's write stream
            finally:
                # Must finish under cancellation too, or the server would leak.
                with trio.CancelScope(shield=True):
                    await link.shutdown()
                link.stop()
    finally:
        with trio.CancelScope(shield=True):
            # Normally done already (then at once); not if we failed before the yield.
            await end_process_group(process)
            _ = process.returncode  # reaps an exited server (and releases its pidfd)
            for stream in (
                process.stdin,
                process.stdout,
                process.stderr,
                read_send,
                read_receive,
            ):
                if stream is not None:
                    await stream.aclose()
