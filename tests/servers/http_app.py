"""Serve an SDK-built MCP server over Streamable HTTP (``/mcp``) and SSE (``/sse``) on 127.0.0.1.

The one copy of this for the test servers and the benchmark server. The port comes from
the ``PORT`` environment variable (0, the default, picks one); the port bound is printed
as ``PORT <n>`` on stdout once the socket listens.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any


def serve_http(
    server: Any, extra_routes: Sequence[Any] = (), *, backlog: int = 128, log_level: str = "warning"
) -> None:
    import uvicorn
    from starlette.applications import Starlette

    http_app = server.streamable_http_app()
    sse_app = server.sse_app()
    app = Starlette(
        routes=[*http_app.routes, *sse_app.routes, *extra_routes],
        lifespan=lambda _app: server._lowlevel_server.session_manager.run(),
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this on Linux: no Nagle stalls on small responses.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("PORT", "0"))))
    sock.listen(backlog)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on")).run(sockets=[sock])
