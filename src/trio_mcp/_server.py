"""One server's place in the pool: a supervisor task that opens sessions on demand.

Each configured server gets a :class:`ServerSlot` whose supervisor task
(:meth:`ServerSlot.serve`) lives in the pool's nursery from the start. It sleeps on a
trio memory channel until a caller asks for a session, then starts the session's
owner task with ``nursery.start`` — which returns only when the owner calls
``task_status.started(live)``, i.e. once the MCP handshake is done and the session
is truly usable. Concurrent first callers share that one attempt.

The owner task enters and exits the SDK session itself (anyio task groups must be
exited by the task that entered them) and holds it until the transport ends, the
session is reported lost, or the pool closes. The next caller after a loss simply
asks again, and the supervisor reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs
import trio

from ._config import ServerConfig
from ._errors import MCPPoolError, PoolClosedError, ServerUnavailableError
from ._headers import render_headers
from ._session import LiveSession, open_live_session
from ._translate import translate_connect_error

__all__ = ["ServerSlot"]

logger = logging.getLogger("trio_mcp")


@attrs.define(eq=False)
class _Attempt:
    """One connection attempt that every caller arriving meanwhile waits on."""

    done: trio.Event = attrs.field(factory=trio.Event)
    live: LiveSession | None = None
    error: MCPPoolError | None = None


def _fresh(error: MCPPoolError) -> MCPPoolError:
    """A copy of ``error`` to raise in one more task (tracebacks are per raise)."""
    cls = type(error)
    clone = cls.__new__(cls, *error.args)
    clone.args = error.args
    clone.__dict__.update(error.__dict__)
    clone.__cause__ = error.__cause__
    clone.__traceback__ = None
    return clone


@attrs.define(eq=False)
class ServerSlot:
    """The supervisor and the current session of one configured server."""

    name: str
    config: ServerConfig
    _variables: Mapping[str, str]
    connect_timeout: float
    call_timeout: float
    _nursery: trio.Nursery | None = None
    live: LiveSession | None = None
    closing: bool = False
    _attempt: _Attempt | None = None
    _wake_send: trio.MemorySendChannel[None] = attrs.field(init=False)
    _wake_receive: trio.MemoryReceiveChannel[None] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)

    # -- caller side --------------------------------------------------------------

    async def session(self) -> LiveSession:
        """The live session, connecting first if there is none (callers coalesce)."""
        live = self.live
        if live is not None and not live.lost.is_set():
            return live
        if self.closing:
            raise PoolClosedError(f"the pool is closed; server {self.name!r} is not served", server=self.name)
        attempt = self._attempt
        if attempt is None:
            attempt = self._attempt = _Attempt()
            try:
                self._wake_send.send_nowait(None)
            except trio.WouldBlock:
                pass  # the supervisor has a wake-up pending already
        await attempt.done.wait()
        if attempt.error is not None:
            raise _fresh(attempt.error)
        assert attempt.live is not None
        return attempt.live

    # -- supervisor side ----------------------------------------------------------

    async def serve(self, nursery: trio.Nursery, *, task_status: trio.TaskStatus[None]) -> None:
        """Open a session whenever one is wanted; hold it until it ends; repeat."""
        self._nursery = nursery
        task_status.started()
        try:
            async for _ in self._wake_receive:
                attempt = self._attempt
                if attempt is None:
                    continue
                finished = trio.Event()
                try:
                    live = await self._connect(finished)
                except MCPPoolError as error:
                    logger.info("server %r: connection failed: %s", self.name, error)
                    attempt.error = error
                    self._attempt = None
                    attempt.done.set()
                    continue
                logger.info("server %r: connected (protocol %s)", self.name, live.client.protocol_version)
                self.live = attempt.live = live
                self._attempt = None
                attempt.done.set()
                await finished.wait()
        finally:
            self.closing = True
            attempt = self._attempt
            if attempt is not None and not attempt.done.is_set():
                attempt.error = PoolClosedError(
                    f"the pool closed while connecting to server {self.name!r}", server=self.name
                )
                attempt.done.set()

    async def _connect(self, finished: trio.Event) -> LiveSession:
        assert self._nursery is not None
        headers = render_headers(self.name, getattr(self.config, "headers", {}), self._variables)
        try:
            with trio.fail_after(self.connect_timeout):
                live: LiveSession = await self._nursery.start(self._hold, headers, finished)
        except trio.TooSlowError:
            raise ServerUnavailableError(
                f"server {self.name!r} is unavailable: no MCP session within "
                f"{self.connect_timeout:g}s (connect timeout)",
                server=self.name,
            ) from None
        except Exception as exc:  # includes ExceptionGroups of Exceptions, never Cancelled
            error = translate_connect_error(exc, self.name)
            raise error from error.__cause__
        return live

    async def _hold(
        self,
        headers: dict[str, str],
        finished: trio.Event,
        *,
        task_status: trio.TaskStatus[LiveSession],
    ) -> None:
        """The owner task: enter the session, report ready, hold it, close it."""
        started = False
        try:
            async with open_live_session(self.name, self.config, headers, self.call_timeout) as live:
                task_status.started(live)
                started = True
                await live.lost.wait()
                logger.info("server %r: session lost; closing it", self.name)
        except Exception:
            if not started:
                raise
            # After start, a failure while closing must not take the pool down.
            logger.debug("server %r: error while closing the session", self.name, exc_info=True)
        finally:
            if started:
                self.live = None
            finished.set()
