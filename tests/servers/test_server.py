"""A real MCP server, written with the ``mcp`` SDK, that the test-suite talks to.

Run it as ``python tests/servers/test_server.py stdio`` (a stdio subprocess) or
``python tests/servers/test_server.py http`` (Streamable HTTP at ``/mcp`` and SSE at
``/sse`` on 127.0.0.1, on an ephemeral port printed as ``PORT <n>`` on stdout).

Tools:
- ``echo(text)`` and ``add(a, b)`` answer at once;
- ``slow(seconds, tag)`` sleeps and records in ``events`` whether it finished or was
  cancelled (``events(tag)`` reads them back; ``wait_event(tag, wanted)`` answers once
  ``wanted`` has happened), so tests can prove a cancelled call was cancelled *on the
  server* without polling;
- ``fail(message)`` raises, which MCP turns into a result with ``isError``;
- ``list_count()`` reports how many ``tools/list`` requests this process served;
- ``add_tool(name)`` registers a new tool and announces the change to the client;
- ``crash()`` kills the server process at once (a crash mid-call);
- ``whoami()`` returns the request headers it saw that start with ``x-test-``;
- ``pid()`` returns the server's process id;
- ``close_stdout()`` closes stdout and keeps running; ``garbage()`` writes a non-JSON line;
- with ``TEST_SERVER_EXTRA_TOOLS=N`` in its environment it offers N more tools.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool

_list_count = 0
_events: dict[str, list[str]] = {}
# Set (and replaced) whenever an event is recorded, to wake ``wait_event`` callers.
_recorded: anyio.Event | None = None


def _record(log: list[str], event: str) -> None:
    global _recorded
    log.append(event)
    if _recorded is not None:
        _recorded.set()
        _recorded = None


async def _count_list_tools(ctx: Any, call_next: Any) -> Any:
    """Server middleware: count every tools/list request this process serves."""
    global _list_count
    if ctx.method == "tools/list":
        _list_count += 1
    return await call_next(ctx)


def _extra_tools(count: int) -> list[Tool]:
    """``extra_tool_<i>()`` returning ``i``: one analysed function, copied ``count`` times.

    ``add_tool`` analyses each function with pydantic (about 1.5 ms of CPU apiece), so
    3,000 tools took 5 s of CPU to start and a busy machine missed the client's connect
    timeout; copies cost microseconds.
    """

    def numbered() -> int:
        return 0

    template = Tool.from_function(numbered, name="extra_tool", description="padding tool")
    return [
        template.model_copy(
            update={"name": f"extra_tool_{i}", "description": f"padding tool {i}", "fn": lambda i=i: i}
        )
        for i in range(count)
    ]


server: MCPServer[Any] = MCPServer(
    "trio-mcp-test-server",
    middleware=[_count_list_tools],
    tools=_extra_tools(int(os.environ.get("TEST_SERVER_EXTRA_TOOLS", "0"))),
)


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def slow(seconds: float, tag: str = "") -> str:
    """Sleep, then answer; record whether the sleep finished or was cancelled."""
    log = _events.setdefault(tag, [])
    _record(log, "started")
    try:
        await anyio.sleep(seconds)
    except BaseException:
        _record(log, "cancelled")
        raise
    _record(log, "finished")
    return f"slept {seconds}"


@server.tool()
def events(tag: str) -> list[str]:
    """What happened to the ``slow`` calls with this tag."""
    return _events.get(tag, [])


@server.tool()
async def wait_event(tag: str, wanted: str) -> list[str]:
    """Wait until a ``slow`` call with this tag records ``wanted``; then what happened."""
    global _recorded
    while wanted not in _events.get(tag, []):
        if _recorded is None:
            _recorded = anyio.Event()
        await _recorded.wait()
    return _events[tag]


@server.tool()
def fail(message: str = "boom") -> str:
    """Always raise; MCP reports it as a result with isError set."""
    raise ValueError(message)


@server.tool()
def list_count() -> int:
    """How many tools/list requests this server process has answered."""
    return _list_count


@server.tool()
async def add_tool(name: str, ctx: Context) -> str:
    """Register a new tool called ``name`` and tell the client the list changed."""

    def extra() -> str:
        return name

    server.add_tool(extra, name=name, description=f"added at run time: {name}")
    # Legacy sessions hear it as notifications/tools/list_changed on the session;
    # 2026-era sessions hear it on their subscriptions/listen stream.
    try:
        await ctx.session.send_tool_list_changed()
    except Exception:
        pass
    await ctx.notify_tools_changed()
    return name


@server.tool()
def crash() -> str:
    """Die at once, mid-call, without answering."""
    os._exit(3)


@server.tool()
def whoami(ctx: Context) -> dict[str, str]:
    """The ``x-test-*`` request headers this call arrived with."""
    transport = getattr(ctx.request_context, "transport", None)
    headers = getattr(transport, "headers", None) or ctx.headers or {}
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-test-")}


@server.tool()
def getenv(name: str) -> str:
    """The value of an environment variable in the server process ('' if unset)."""
    return os.environ.get(name, "")


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


def _wire_fds() -> list[int]:
    """The descriptors carrying the stdio wire to the client.

    The SDK's stdio server serves the wire from a private duplicate of the original
    stdout (fd 1 is diverted to stderr so stray prints cannot corrupt it), so find the
    write ends of pipes other than whatever fd 2 is.
    """
    stderr_target = os.readlink("/proc/self/fd/2")
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            with open(f"/proc/self/fdinfo/{fd}") as info:
                fields = dict(line.split(":", 1) for line in info if ":" in line)
            flags = int(fields["flags"].strip(), 8)
        except (OSError, KeyError, ValueError):
            continue
        if (
            fd > 2
            and target.startswith("pipe:")
            and target != stderr_target
            and flags & os.O_ACCMODE == os.O_WRONLY
        ):
            found.append(fd)
    return found


@server.tool()
def close_stdout() -> str:
    """Close the stdio wire's write end (the client sees end-of-stream) and keep running."""
    for fd in _wire_fds():
        os.close(fd)
    return "closed"


@server.tool()
def garbage() -> str:
    """Write a line that is not JSON-RPC onto the stdio wire, then answer normally."""
    for fd in _wire_fds():
        os.write(fd, b"this is not json\n")
    return "ok"


@server.resource("memo://greeting")
def greeting() -> str:
    """A fixed text resource."""
    return "hello from the test server"


@server.prompt()
def summarize(topic: str) -> str:
    """A one-message prompt."""
    return f"Please summarize {topic}."


def _serve_http() -> None:
    import uvicorn
    from starlette.applications import Starlette

    http_app = server.streamable_http_app()
    sse_app = server.sse_app()
    app = Starlette(
        routes=[*http_app.routes, *sse_app.routes],
        lifespan=lambda _app: server._lowlevel_server.session_manager.run(),  # type: ignore[attr-defined]
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this on Linux: no Nagle stalls on small responses.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        server.run("stdio")
    elif mode == "http":
        _serve_http()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
