"""What a server said about itself when its session was opened."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import mcp.types as types
from mcp import Client

__all__ = ["ServerInfo", "server_info_of"]


@attrs.frozen(eq=False)
class ServerInfo:
    """A server's self-description, from the handshake of its current session.

    ``initialize`` on 2025-era sessions; ``server/discover`` on 2026-07-28 ones, where
    a server may leave out its name (``implementation`` is then None).
    """

    #: The pool's name for the server.
    server: str
    #: The protocol version the session negotiated (e.g. ``"2025-11-25"``).
    protocol_version: str
    #: The server's name, version and title, if it gave them.
    implementation: types.Implementation | None
    #: What the server offers (tools, resources, prompts, logging, completions, ...).
    capabilities: types.ServerCapabilities
    #: The server's instructions for using it (often meant for an LLM's system prompt).
    instructions: str | None

    @property
    def extensions(self) -> Mapping[str, Any]:
        """The MCP extensions the server declared (identifier -> settings)."""
        return self.capabilities.extensions or {}


def server_info_of(server: str, client: Client) -> ServerInfo:
    return ServerInfo(
        server=server,
        protocol_version=client.protocol_version,
        implementation=client.server_info,
        capabilities=client.server_capabilities,
        instructions=client.instructions,
    )
