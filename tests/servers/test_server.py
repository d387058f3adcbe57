"""A real MCP server, written with the ``mcp`` SDK, that the test-suite talks to.

Run it as ``python tests/servers/test_server.py stdio`` (a stdio subprocess) or
``python tests/servers/test_server.py http`` (Streamable HTTP at ``/mcp`` and SSE at
``/sse`` on 127.0.0.1, on the port given as the next argument or in the ``PORT``
environment variable, else an ephemeral one; printed as ``PORT <n>`` on stdout).

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
- ``jsonrpc_error(code, message, tag)`` answers with that JSON-RPC error (and records
  that it ran under ``tag``);
- ``pid()`` returns the server's process id;
- ``close_stdout()`` closes stdout and keeps running; ``garbage()`` writes a non-JSON line;
- with ``TEST_SERVER_EXTRA_TOOLS=N`` in its environment it offers N more tools;
- ``sample_it(prompt)``, ``ask(question)`` and ``client_roots()`` ask the client for an
  LLM completion, a form answer and its roots (in either protocol era);
  ``progress_steps(steps, pause)`` reports progress; ``log_lines(levels)`` logs;
  ``client_notes()`` lists the ``logging/setLevel`` requests and
  ``roots/list_changed`` notifications it received.
- ``blob(size)`` returns a text of ``size`` bytes (large-result measurements).
- ``argv()`` and ``cwd()`` return its command-line arguments and working directory;
  ``to_stderr(text)`` writes ``text`` to its stderr; with ``TEST_SERVER_BANNER`` in its
  environment it writes that to stderr when it starts (as chatty servers do).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated, Any

import anyio
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve, Sample
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import (
    CreateMessageResult,
    EmptyResult,
    ListRootsResult,
    NotificationParams,
    SamplingMessage,
    SetLevelRequestParams,
    TextContent,
)
from pydantic import BaseModel

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


server: MCPServer[Any] = MCPServer("trio-mcp-test-server", middleware=[_count_list_tools])


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


@server.tool()
def jsonrpc_error(code: int, message: str, tag: str = "") -> str:
    """Answer with a JSON-RPC error of the caller's choosing (recorded under ``tag``)."""
    _events.setdefault(tag, []).append("ran")
    raise MCPError(code, message)


for _index in range(int(os.environ.get("TEST_SERVER_EXTRA_TOOLS", "0"))):

    def _numbered(index: int = _index) -> int:
        return index

    server.add_tool(_numbered, name=f"extra_tool_{_index}", description=f"padding tool {_index}")


@server.resource("memo://greeting")
def greeting() -> str:
    """A fixed text resource."""
    return "hello from the test server"


@server.prompt()
def summarize(topic: str) -> str:
    """A one-message prompt."""
    return f"Please summarize {topic}."


# -- tools that call back into the client (sampling, elicitation, roots, progress, logs) --
# ``Resolve(...)`` makes the SDK use the negotiated era's mechanism: a server-to-client
# request mid-call on 2025 sessions, an ``input_required`` result on 2026-07-28 ones.


class _Answer(BaseModel):
    name: str = "anonymous"
    count: int = 3


def _sampling_request(prompt: str) -> Sample:
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=50
    )


def _question(question: str) -> Elicit[_Answer]:
    return Elicit(question, _Answer)


def _roots_request() -> ListRoots:
    return ListRoots()


@server.tool()
async def sample_it(prompt: str, answer: Annotated[CreateMessageResult, Resolve(_sampling_request)]) -> str:
    """Ask the client's LLM to complete ``prompt``; return the text it produced."""
    content = answer.content
    return content.text if isinstance(content, TextContent) else repr(content)


@server.tool()
async def ask(question: str, answer: Annotated[ElicitationResult[_Answer], Resolve(_question)]) -> str:
    """Ask the user ``question`` (a name and a count); return their answer as JSON or the action."""
    if isinstance(answer, AcceptedElicitation):
        return answer.data.model_dump_json()
    return answer.action


@server.tool()
async def client_roots(roots: Annotated[ListRootsResult, Resolve(_roots_request)]) -> list[str]:
    """The URIs of the client's roots."""
    return [str(root.uri) for root in roots.roots]


@server.tool()
async def progress_steps(steps: int, pause: float, ctx: Context) -> str:
    """Report progress ``steps`` times, ``pause`` seconds apart; then answer."""
    for step in range(1, steps + 1):
        await anyio.sleep(pause)
        await ctx.report_progress(step, steps, f"step {step}")
    return f"{steps} steps"


@server.tool()
async def log_lines(levels: list[str], ctx: Context) -> str:
    """Send one log message at each of ``levels`` (logger ``test-logger``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        for level in levels:
            await ctx.log(level, f"{level} line", logger_name="test-logger")  # type: ignore[arg-type]
    return "logged"


_client_notes: list[str] = []


async def _on_set_level(_ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    _client_notes.append(f"logging/setLevel {params.level}")
    return EmptyResult()


async def _on_roots_changed(_ctx: Any, _params: NotificationParams) -> None:
    _client_notes.append("roots/list_changed")


server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, _on_set_level)
server._lowlevel_server.add_notification_handler(
    "notifications/roots/list_changed", NotificationParams, _on_roots_changed
)


@server.tool()
def client_notes() -> list[str]:
    """The logging/setLevel requests and roots/list_changed notifications this process got."""
    return list(_client_notes)


@server.tool()
def blob(size: int) -> str:
    """A text of ``size`` bytes."""
    return "x" * size


@server.tool()
def argv() -> list[str]:
    """This server's command-line arguments (after the script)."""
    return sys.argv[1:]


@server.tool()
def cwd() -> str:
    """This server's working directory."""
    return os.getcwd()


@server.tool()
def to_stderr(text: str) -> str:
    """Write ``text`` to this server's stderr."""
    sys.stderr.write(text)
    sys.stderr.flush()
    return "written"


def _serve_http() -> None:
    from http_app import serve_http
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def status(request: Request) -> Response:
        """``/status/<code>``: every request is answered with that HTTP status."""
        code = int(request.path_params["code"])
        headers = (
            {"WWW-Authenticate": 'Bearer error="invalid_token", scope="files:read"'} if code == 401 else {}
        )
        return Response("no", status_code=code, headers=headers)

    async def bad_version(request: Request) -> Response:
        """``/bad-version``: a server whose only protocol version is one nobody speaks."""
        message = await request.json()
        if message.get("method") == "initialize":
            result = {
                "protocolVersion": "1999-01-01",
                "capabilities": {},
                "serverInfo": {"name": "old", "version": "0"},
            }
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})
        if "id" in message:
            error = {"code": -32601, "message": "Method not found"}
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": error})
        return Response(status_code=202)

    if len(sys.argv) > 2:
        os.environ["PORT"] = sys.argv[2]
    serve_http(
        server,
        [
            Route("/status/{code:int}", status, methods=["GET", "POST", "DELETE"]),
            Route("/bad-version", bad_version, methods=["POST"]),
        ],
    )


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if banner := os.environ.get("TEST_SERVER_BANNER"):
        sys.stderr.write(banner)
        sys.stderr.flush()
    if mode == "stdio":
        server.run("stdio")
    elif mode == "http":
        _serve_http()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
