"""A minimal stdio MCP server with no imports beyond the standard library.

It starts in a few milliseconds (the SDK-based server spends ~0.6 s of CPU importing),
so the ``scale``, ``shutdown`` and ``list_tools_burst`` scenarios measure the *client*
rather than a hundred Python interpreters importing pydantic on two cores. It speaks the
2025-11-25 handshake (answering ``server/discover`` with method-not-found, as a legacy
server does) and offers two tools: ``echo`` and ``list_count`` (how many ``tools/list``
requests it has answered).
"""

import json
import sys


def reply(message_id, result=None, error=None):
    body = {"jsonrpc": "2.0", "id": message_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    sys.stdout.write(json.dumps(body) + "\n")
    sys.stdout.flush()


ECHO = {
    "name": "echo",
    "description": "Return the text.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}
LIST_COUNT = {
    "name": "list_count",
    "description": "How many tools/list requests this server has answered.",
    "inputSchema": {"type": "object", "properties": {}},
}
lists_answered = 0

for line in sys.stdin:
    if not line.strip():
        continue
    message = json.loads(line)
    method, message_id = message.get("method"), message.get("id")
    if message_id is None:
        continue  # notifications need no answer
    params = message.get("params") or {}
    if method == "initialize":
        reply(
            message_id,
            {
                "protocolVersion": params.get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mini", "version": "1"},
            },
        )
    elif method == "tools/list":
        lists_answered += 1
        reply(message_id, {"tools": [ECHO, LIST_COUNT]})
    elif method == "tools/call" and params.get("name") == "echo":
        text = (params.get("arguments") or {}).get("text", "")
        reply(message_id, {"content": [{"type": "text", "text": text}], "isError": False})
    elif method == "tools/call" and params.get("name") == "list_count":
        count = {"result": lists_answered}
        content = [{"type": "text", "text": str(lists_answered)}]
        reply(message_id, {"content": content, "structuredContent": count, "isError": False})
    elif method == "ping":
        reply(message_id, {})
    else:
        reply(message_id, error={"code": -32601, "message": f"Method not found: {method}"})
