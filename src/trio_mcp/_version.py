"""The package version, and how this client introduces itself to servers."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import mcp.types as types

__all__ = ["CLIENT_INFO", "__version__"]

try:
    __version__ = version("trio-mcp")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"

CLIENT_INFO = types.Implementation(name="trio-mcp", version=__version__)
