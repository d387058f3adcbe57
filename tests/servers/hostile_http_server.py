"""A hand-written Streamable HTTP MCP server (trio, raw sockets) that misbehaves on request.

Run it as ``python tests/servers/hostile_http_server.py`` (on 127.0.0.1, at the port in
``PORT``). It answers every path: ``/mcp`` behaves; ``/<mode>/mcp`` misbehaves in a
way that touches every request (the handshake too):

- ``/stall/...``: accepts the connection, reads the request and never answers;
- ``/loop/...``: answers every request with a 307 to itself;
- ``/moved/...``: a 308 to ``/mcp`` on the same origin (followed, the session works);
- ``/away/...``: a 307 to ``/mcp`` on another origin (``localhost`` instead of the IP).

The older HTTP+SSE transport is served at ``/sse`` (the same tools; those that answer
with a plain 200 answer on the stream), ``/sse-silent`` (a stream of comments without
the endpoint event) and ``/sse-away`` (an endpoint on another origin).

Both eras: ``server/discover`` is answered (so ``mode="auto"`` speaks 2026-07-28) and
``initialize`` too (``mode="legacy"``); ``?bad_list`` in the URL makes the ``tools/list``
result malformed. Tools (``echo(text)`` behaves; each other one misbehaves as its name says):

- ``echo_400``/``_404``/``_500`` (a text body), ``echo_401`` (in its challenge too),
  ``echo_400_rpc`` and ``echo_rpc`` (a JSON-RPC error's message and data),
  ``echo_bad_result``: each puts the request's secrets in its answer — the
  ``Authorization`` and ``X-Api-Key`` values and the URL's query;
- ``server_error``: JSON-RPC error -32000; ``html``, ``empty``, ``not_json``,
  ``truncated``, ``wrong_id`` (an answer for another id): broken answers;
- ``sse_ends`` (a stream that ends unanswered), ``sse_keepalive`` (only comments, for
  ever), ``stall`` (no answer at all), ``reset`` (half an answer, then a TCP reset);
- ``huge(size)``/``huge_sse(size)``: a result that large, as JSON or as one SSE event;
- ``gate()`` answers once ``release()`` is called; ``gated()`` once a gate call waits.
"""

from __future__ import annotations

import json
import os
from typing import Any

import trio

TOOLS = [
    "echo",
    "echo_400",
    "echo_404",
    "echo_500",
    "echo_400_rpc",
    "echo_401",
    "echo_rpc",
    "server_error",
    "echo_bad_result",
    "html",
    "empty",
    "not_json",
    "truncated",
    "wrong_id",
    "sse_ends",
    "sse_keepalive",
    "stall",
    "reset",
    "huge",
    "huge_sse",
    "gate",
    "release",
    "gated",
]
#: ``gate()`` answers once ``release()`` was called (by anybody); ``gated()`` answers
#: once a gate call waits.
GATE: dict[str, Any] = {"event": trio.Event(), "waiting": 0, "arrived": trio.Event()}


class Request:
    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.target, self.headers, self.body = method, target, headers, body
        self.path, _, self.query = target.partition("?")

    def secrets(self) -> str:
        header = self.headers.get("authorization", "") + " " + self.headers.get("x-api-key", "")
        return f"you sent {header} at {self.target} (query {self.query})"


async def read_request(stream: trio.SocketStream, buffer: bytearray) -> Request | None:
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some()
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = await stream.receive_some()
        if not chunk:
            return None
        rest += chunk
    buffer[:] = rest[length:]
    return Request(method, target, headers, rest[:length])


def response(status: int, body: bytes = b"", content_type: str = "application/json", **extra: str) -> bytes:
    headers = {"content-type": content_type, "content-length": str(len(body)), **extra}
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


def rpc(message_id: Any, result: Any = None, error: Any = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": message_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    return json.dumps(body).encode()


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


CAPABILITIES = {"tools": {}}
INFO = {"name": "hostile-http", "version": "1"}


async def answer_mcp(stream: trio.SocketStream, request: Request) -> bool:
    """Answer one MCP POST (or GET/DELETE); False if the connection must end."""
    if request.method == "GET":
        await stream.send_all(response(405, b""))
        return True
    if request.method == "DELETE":
        await stream.send_all(response(200, b""))
        return True
    message = json.loads(request.body)
    method, message_id = message.get("method"), message.get("id")
    params = message.get("params") or {}
    if message_id is None:
        await stream.send_all(response(202, b""))
        return True
    if method == "server/discover":
        result: Any = {"supportedVersions": ["2026-07-28"], "capabilities": CAPABILITIES, "serverInfo": INFO}
    elif method == "initialize":
        result = {"protocolVersion": "2025-11-25", "capabilities": CAPABILITIES, "serverInfo": INFO}
    elif method == "tools/list":
        tools = [{"name": name, "inputSchema": {"type": "object"}} for name in TOOLS]
        result = {
            "tools": "broken" if "bad_list" in request.query else tools,
            "ttlMs": 0,
            "cacheScope": "private",
        }
    elif method == "ping":
        result = {}
    elif method == "tools/call":
        return await misbehave(stream, request, message_id, params.get("name"), params.get("arguments") or {})
    else:
        error = {"code": -32601, "message": f"Method not found: {method}"}
        await stream.send_all(response(200, rpc(message_id, error=error)))
        return True
    await stream.send_all(response(200, rpc(message_id, result)))
    return True


async def misbehave(
    stream: trio.SocketStream, request: Request, message_id: Any, name: str, arguments: dict[str, Any]
) -> bool:
    secrets = request.secrets()
    if name == "echo":
        await stream.send_all(response(200, rpc(message_id, text(arguments.get("text", "")))))
    elif name in ("echo_400", "echo_404", "echo_500"):
        await stream.send_all(response(int(name[-3:]), secrets.encode(), "text/plain"))
    elif name == "echo_401":  # a challenge that quotes the request's credentials
        header = request.headers.get("authorization", "")
        challenge = f'Bearer error="invalid_token", error_description="{header}", scope="{request.query}"'
        await stream.send_all(response(401, secrets.encode(), "text/plain", www_authenticate=challenge))
    elif name == "echo_400_rpc":
        error = {"code": -32602, "message": secrets, "data": {"echo": secrets}}
        await stream.send_all(response(400, rpc(message_id, error=error)))
    elif name == "echo_rpc":
        error = {"code": -32000, "message": secrets, "data": {"echo": secrets}}
        await stream.send_all(response(200, rpc(message_id, error=error)))
    elif name == "echo_bad_result":  # content must be a list
        await stream.send_all(response(200, rpc(message_id, {"content": secrets})))
    elif name == "gate":
        GATE["waiting"] += 1
        GATE["arrived"].set()
        await GATE["event"].wait()
        GATE["waiting"] -= 1
        await stream.send_all(response(200, rpc(message_id, text("released"))))
    elif name == "release":
        GATE["event"].set()
        GATE["event"], GATE["arrived"] = trio.Event(), trio.Event()
        await stream.send_all(response(200, rpc(message_id, text("done"))))
    elif name == "gated":
        await GATE["arrived"].wait()
        await stream.send_all(response(200, rpc(message_id, text(str(GATE["waiting"])))))
    elif name == "server_error":  # JSON-RPC's first code for a server's own errors
        error = {"code": -32000, "message": "Server error"}
        await stream.send_all(response(200, rpc(message_id, error=error)))
    elif name == "html":
        await stream.send_all(response(200, f"<html>{secrets}</html>".encode(), "text/html"))
    elif name == "empty":
        await stream.send_all(response(200, b""))
    elif name == "not_json":
        await stream.send_all(response(200, secrets.encode()))
    elif name == "truncated":
        body = rpc(message_id, text(secrets))
        await stream.send_all(response(200, body[: len(body) // 2]))
    elif name == "wrong_id":
        await stream.send_all(response(200, rpc(f"not-{message_id}", text("for somebody else"))))
    elif name == "sse_ends":
        events = f": {secrets}\n\n".encode()
        await stream.send_all(response(200, events, "text/event-stream"))
    elif name == "sse_keepalive":
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        await stream.send_all(head)
        while True:  # until the client goes away
            await stream.send_all(b"d\r\n: keepalive\n\n\r\n")
            await trio.sleep(0.5)
    elif name == "stall":
        await trio.sleep_forever()
    elif name == "reset":
        body = rpc(message_id, text("x" * 10_000))
        await stream.send_all(response(200, body)[:2000])
        stream.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return False
    elif name in ("huge", "huge_sse"):
        body = rpc(message_id, text("x" * int(arguments.get("size", 1 << 20))))
        if name == "huge":
            await stream.send_all(response(200, body))
        else:  # one SSE event
            await stream.send_all(
                response(200, b"event: message\ndata: " + body + b"\n\n", "text/event-stream")
            )
    else:
        error = {"code": -32602, "message": f"Unknown tool: {name}"}
        await stream.send_all(response(200, rpc(message_id, error=error)))
    return True


# -- the older HTTP+SSE transport: a GET stream of events, answers to POSTs come on it ----

#: Where the answers of each SSE session go (its GET stream), by session number.
SSE_SESSIONS: dict[str, trio.MemorySendChannel[bytes]] = {}


class Capture:
    """Stands in for a connection: keeps what :func:`answer_mcp` would send."""

    def __init__(self) -> None:
        self.data = b""

    async def send_all(self, data: bytes) -> None:
        self.data += data

    def setsockopt(self, *args: Any) -> None:
        pass


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def sse_stream(stream: trio.SocketStream, request: Request, mode: str, port: int) -> None:
    """``/sse``: the endpoint event, then the answers; ``/sse-silent``: comments only, for
    ever; ``/sse-away``: an endpoint on another origin."""
    await stream.send_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    if mode == "sse-silent":
        while True:
            await stream.send_all(chunk(b": keepalive\n\n"))
            await trio.sleep(0.5)
    session = str(len(SSE_SESSIONS))
    send, receive = trio.open_memory_channel[bytes](100)
    SSE_SESSIONS[session] = send
    origin = f"http://localhost:{port}" if mode == "sse-away" else ""
    endpoint = f"{origin}/sse/messages?session={session}&{request.query}"
    await stream.send_all(chunk(f"event: endpoint\ndata: {endpoint}\n\n".encode()))
    async for body in receive:
        await stream.send_all(chunk(b"event: message\ndata: " + body + b"\n\n"))


async def sse_message(stream: trio.SocketStream, request: Request) -> None:
    """A POST of the SSE transport: 202, and the body of a 200 answer (whatever its
    type) as an event on the session's stream; any other answer is sent back as it is."""
    capture = Capture()
    await answer_mcp(capture, request)  # type: ignore[arg-type]
    head, _, body = capture.data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status == b"200" and b"text/event-stream" not in head:
        session = dict(pair.partition("=")[::2] for pair in request.query.split("&"))["session"]
        await SSE_SESSIONS[session].send(body)
        await stream.send_all(response(202, b"Accepted", "text/plain"))
    else:
        await stream.send_all(capture.data)


async def serve(stream: trio.SocketStream, port: int) -> None:
    buffer = bytearray()
    async with stream:
        while True:
            try:
                request = await read_request(stream, buffer)
            except trio.BrokenResourceError:
                return
            if request is None:
                return
            mode = request.path.split("/")[1]
            try:
                if mode == "stall":
                    await trio.sleep_forever()
                elif mode == "loop":
                    await stream.send_all(response(307, location=request.target))
                elif mode == "moved":
                    await stream.send_all(
                        response(308, location=f"http://127.0.0.1:{port}/mcp?{request.query}")
                    )
                elif mode == "away":
                    await stream.send_all(
                        response(307, location=f"http://localhost:{port}/mcp?{request.query}")
                    )
                elif mode.startswith("sse") and request.method == "GET":
                    await sse_stream(stream, request, mode, port)
                    return
                elif mode == "sse":
                    await sse_message(stream, request)
                elif not await answer_mcp(stream, request):
                    return
            except trio.BrokenResourceError:
                return


async def main() -> None:
    port = int(os.environ.get("PORT", "0"))
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    print(f"PORT {port}", flush=True)
    await trio.serve_listeners(lambda stream: serve(stream, port), listeners)


if __name__ == "__main__":
    trio.run(main)
