"""Turning a server configuration into an SDK transport, watched for end-of-stream.

The SDK's dispatcher notices a dead transport only when somebody next sends on it.
The pool wants to know at once (to reap a crashed child and reconnect), so the read
side of every transport is wrapped in :class:`_WatchedReadStream`, which fires an
event when the stream ends. It costs one extra attribute lookup per message.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from mcp.client._transport import ReadStream, Transport, TransportStreams, WriteStream
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage

from ._config import InProcessServer, ServerConfig, SseServer, StdioServer
from ._errors import ServerUnavailableError
from ._redact import install_log_redaction

__all__ = ["open_transport"]


class _WatchedReadStream:
    """A read stream that calls ``on_end`` once, when its inner stream ends or breaks."""

    __slots__ = ("_ended", "_inner", "_on_end")

    def __init__(self, inner: ReadStream[SessionMessage | Exception], on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end
        self._ended = False

    @property
    def last_context(self) -> Any:
        # The SDK duck-types this to restore the sender's contextvars.
        return getattr(self._inner, "last_context", None)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end()

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._end()
            raise

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _resolve_command(name: str, config: StdioServer) -> str:
    """The executable to run, or a clear error if there is none (before any spawn)."""
    command = config.command
    if os.sep in command or (os.altsep and os.altsep in command):
        base = Path(config.cwd) if config.cwd is not None else Path.cwd()
        path = Path(command) if Path(command).is_absolute() else base / command
        if os.access(path, os.X_OK) and path.is_file():
            return command
    else:
        search_path = (config.env or {}).get("PATH", os.environ.get("PATH"))
        found = shutil.which(command, path=search_path)
        if found is not None:
            return found
    raise ServerUnavailableError(
        f"server {name!r}: command {command!r} was not found or is not executable",
        server=name,
    )


@asynccontextmanager
async def _streamable_http(url: str, headers: dict[str, str]) -> AsyncIterator[TransportStreams]:
    client = create_mcp_http_client(headers=headers)
    async with client, streamable_http_client(url, http_client=client) as streams:
        yield streams


def _build(name: str, config: ServerConfig, rendered: dict[str, str]) -> Transport:
    """The SDK transport; ``rendered`` is the templated headers, or a stdio server's env."""
    assert not isinstance(config, InProcessServer)  # the SDK connects those itself
    if isinstance(config, StdioServer):
        if config.cwd is not None and not Path(config.cwd).is_dir():
            raise ServerUnavailableError(
                f"server {name!r}: working directory {str(config.cwd)!r} does not exist",
                server=name,
            )
        params = StdioServerParameters(
            command=_resolve_command(name, config),
            args=list(config.args),
            env=rendered if config.env is not None else None,
            cwd=config.cwd,
        )
        return stdio_client(params)
    if isinstance(config, SseServer):
        return sse_client(config.url, headers=rendered)
    return _streamable_http(config.url, rendered)


@asynccontextmanager
async def open_transport(
    name: str, config: ServerConfig, headers: dict[str, str], on_end: Callable[[], None]
) -> AsyncIterator[tuple[_WatchedReadStream, WriteStream[SessionMessage]]]:
    """Open the transport ``config`` describes; ``on_end`` fires when it stops delivering."""
    install_log_redaction()  # again: SDK loggers may have been created since import
    async with _build(name, config, headers) as (read_stream, write_stream):
        yield _WatchedReadStream(read_stream, on_end), write_stream
