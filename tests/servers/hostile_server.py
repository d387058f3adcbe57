"""A hand-written stdio MCP server (standard library only) that misbehaves on request.

It speaks the 2025-11-25 handshake like ``benchmarks/mini_server.py`` and exits on
stdin EOF. ``--cursor MODE`` makes every list (tools, resources, templates, prompts) page
forever: ``same`` repeats one cursor, ``cycle`` alternates two, ``endless`` makes a
new one each page. Tools:

- ``echo(text)``; ``pid()`` returns the server's process id;
- ``huge(size, order)``: a text result of ``size`` bytes, serialized with the id first
  (``order="id_first"``, as the Python SDK does), last (``"id_last"``, as the TypeScript
  SDK does) or where no reader can see it cheaply (``"id_hidden"``);
- ``huge_notification(size)``: a log notification of ``size`` bytes, then an answer;
- ``deep(depth)``: a valid result whose structured content nests ``depth`` levels;
- ``malformed()``: a response whose ``result`` is not an object;
- ``noise(lines)``: that many non-JSON lines (holding a fake secret), then an answer;
- ``helpers()``: starts a helper that starts its own helper (the server's process
  group), returns both pids; ``stdout_holder()`` starts a helper that keeps the
  server's stdout open and returns its pid; ``crash()`` exits at once, unanswered.
"""

import json
import os
import subprocess
import sys

SECRET = "SECRET-TOKEN-in-noise"
SLEEPER = "import time; time.sleep(600)"
CURSOR_MODE = sys.argv[sys.argv.index("--cursor") + 1] if "--cursor" in sys.argv else "none"


def write(data):
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def reply(message_id, result=None, error=None):
    body = {"jsonrpc": "2.0", "id": message_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    write(json.dumps(body).encode() + b"\n")


def text(value):
    return {"content": [{"type": "text", "text": value}], "isError": False}


def tool(name):
    return {"name": name, "inputSchema": {"type": "object"}}


TOOLS = ["echo", "pid", "huge", "huge_notification", "deep", "malformed", "noise", "helpers"]
TOOLS += ["stdout_holder", "crash"]


def next_cursor(cursor):
    if CURSOR_MODE == "same":
        return "again"
    if CURSOR_MODE == "cycle":
        return "b" if cursor == "a" else "a"
    if CURSOR_MODE == "endless":
        return f"page-{int((cursor or 'page-0').split('-')[1]) + 1}"
    return None


def page(key, items, cursor):
    result = {key: items}
    following = next_cursor(cursor)
    if following is not None:
        result["nextCursor"] = following
    return result


def huge(message_id, size, order):
    blob = text("x" * size)
    if order == "id_last":
        head, tail = b'{"result":', b',"jsonrpc":"2.0","id":' + json.dumps(message_id).encode() + b"}\n"
    elif order == "id_hidden":
        head = b'{"result":'
        tail = b',"id":' + json.dumps(message_id).encode() + b',"extra":{"a":1},"jsonrpc":"2.0"}\n'
    else:
        head, tail = b'{"jsonrpc":"2.0","id":' + json.dumps(message_id).encode() + b',"result":', b"}\n"
    write(head + json.dumps(blob).encode() + tail)


def helpers():
    starter = (
        "import subprocess, sys, time;"
        f"p = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]);"
        "print(p.pid, flush=True); time.sleep(600)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", starter], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    return [child.pid, int(child.stdout.readline())]


def call(message_id, name, arguments):
    if name == "echo":
        reply(message_id, text(arguments.get("text", "")))
    elif name == "pid":
        reply(message_id, text(str(os.getpid())))
    elif name == "huge":
        huge(message_id, int(arguments["size"]), arguments.get("order", "id_first"))
    elif name == "huge_notification":
        log = {"level": "info", "data": "x" * int(arguments["size"])}
        write(
            json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": log}).encode() + b"\n"
        )
        reply(message_id, text("after the notification"))
    elif name == "deep":
        depth = int(arguments["depth"])
        nested = '{"a":' * depth + "1" + "}" * depth
        line = '{"jsonrpc":"2.0","id":%s,"result":{"content":[],"structuredContent":%s}}\n'
        write((line % (json.dumps(message_id), nested)).encode())
    elif name == "malformed":
        write(b'{"jsonrpc":"2.0","id":' + json.dumps(message_id).encode() + b',"result":"not an object"}\n')
    elif name == "noise":
        write(f"not json: {SECRET}\n".encode() * int(arguments["lines"]))
        reply(message_id, text("ok"))
    elif name == "helpers":
        reply(message_id, text(json.dumps(helpers())))
    elif name == "stdout_holder":
        holder = subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.DEVNULL)
        reply(message_id, text(str(holder.pid)))
    elif name == "crash":
        os._exit(1)
    else:
        reply(message_id, error={"code": -32602, "message": f"Unknown tool: {name}"})


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method, message_id = message.get("method"), message.get("id")
        if message_id is None:
            continue  # notifications need no answer
        params = message.get("params") or {}
        if method == "initialize":
            capabilities = {"tools": {}, "resources": {}, "prompts": {}}
            info = {"name": "hostile", "version": "1"}
            version = params.get("protocolVersion", "2025-11-25")
            reply(message_id, {"protocolVersion": version, "capabilities": capabilities, "serverInfo": info})
        elif method == "tools/list":
            reply(message_id, page("tools", [tool(name) for name in TOOLS], params.get("cursor")))
        elif method == "resources/list":
            resource = {"uri": "memo://one", "name": "one"}
            reply(message_id, page("resources", [resource], params.get("cursor")))
        elif method == "resources/templates/list":
            template = {"uriTemplate": "memo://{name}", "name": "memo"}
            reply(message_id, page("resourceTemplates", [template], params.get("cursor")))
        elif method == "prompts/list":
            reply(message_id, page("prompts", [{"name": "one"}], params.get("cursor")))
        elif method == "tools/call":
            call(message_id, params.get("name"), params.get("arguments") or {})
        elif method == "ping":
            reply(message_id, {})
        else:
            reply(message_id, error={"code": -32601, "message": f"Method not found: {method}"})


main()
