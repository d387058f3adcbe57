"""trio-mcp: a trio-native, structured-concurrency client pool for MCP servers.

In a trio program::

    async with trio_mcp.open_mcp_pool({"files": trio_mcp.StdioServer("mcp-files")}) as pool:
        result = await pool.tool_call("files", "read", {"path": "README.md"})

From threaded code, a portal thread runs the pool::

    with trio_mcp.start_portal({"files": ...}) as portal:
        result = portal.tool_call("files", "read", {"path": "README.md"})
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._errors import AuthorizationError as AuthorizationError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import HandlerError as HandlerError
from ._errors import InvalidArgumentsError as InvalidArgumentsError
from ._errors import InvalidResultError as InvalidResultError
from ._errors import MalformedResponseError as MalformedResponseError
from ._errors import MCPPoolError as MCPPoolError
from ._errors import NotSupportedError as NotSupportedError
from ._errors import PoolClosedError as PoolClosedError
from ._errors import RequestFailedError as RequestFailedError
from ._errors import ResponseTooLargeError as ResponseTooLargeError
from ._errors import ServerDisconnectedError as ServerDisconnectedError
from ._errors import ServerOverloadedError as ServerOverloadedError
from ._errors import ServerRemovedError as ServerRemovedError
from ._errors import ServerUnavailableError as ServerUnavailableError
from ._errors import SkillVerificationError as SkillVerificationError
from ._errors import TemplateError as TemplateError
from ._errors import ToolCallTimeout as ToolCallTimeout
from ._errors import UnknownServerError as UnknownServerError
from ._errors import UnknownToolError as UnknownToolError

if _TYPE_CHECKING:
    from ._auth import ClientCredentials as ClientCredentials
    from ._auth import FileTokenStore as FileTokenStore
    from ._auth import MemoryTokenStore as MemoryTokenStore
    from ._auth import OAuth as OAuth
    from ._auth import TokenStore as TokenStore
    from ._auth import WorkloadIdentity as WorkloadIdentity
    from ._config import InProcessServer as InProcessServer
    from ._config import Limits as Limits
    from ._config import ReconnectPolicy as ReconnectPolicy
    from ._config import ServerConfig as ServerConfig
    from ._config import SseServer as SseServer
    from ._config import StdioServer as StdioServer
    from ._config import StreamableHttpServer as StreamableHttpServer
    from ._handlers import Handlers as Handlers
    from ._handlers import accept_with_defaults as accept_with_defaults
    from ._info import ServerInfo as ServerInfo
    from ._loader import load_servers as load_servers
    from ._openai import to_anthropic_tool as to_anthropic_tool
    from ._openai import to_gemini_tool as to_gemini_tool
    from ._openai import to_openai_tool as to_openai_tool
    from ._openai import to_responses_tool as to_responses_tool
    from ._options import PoolOptions as PoolOptions
    from ._pool import MCPPool as MCPPool
    from ._pool import ToolCall as ToolCall
    from ._pool import open_mcp_pool as open_mcp_pool
    from ._pool import serve_mcp_pool as serve_mcp_pool
    from ._portal import Portal as Portal
    from ._portal import shutdown_all as shutdown_all
    from ._portal import start_portal as start_portal
    from ._prometheus import PrometheusCollector as PrometheusCollector
    from ._results import result_text as result_text
    from ._server import ServerState as ServerState
    from ._server import ServerStatistics as ServerStatistics
    from ._skills import Skill as Skill
    from ._skills import SkillEntry as SkillEntry
    from ._skills import SkillFile as SkillFile
    from ._subscriptions import BlockingResourceSubscription as BlockingResourceSubscription
    from ._subscriptions import ResourceSubscription as ResourceSubscription
    from ._subscriptions import ResourceUpdate as ResourceUpdate
    from ._tenants import TenantPools as TenantPools
    from ._tenants import serve_tenant_pools as serve_tenant_pools
    from ._toolset import BlockingToolset as BlockingToolset
    from ._toolset import OfferedTool as OfferedTool
    from ._toolset import ToolConfig as ToolConfig
    from ._toolset import Toolset as Toolset
    from ._toolset import run_tool_loop as run_tool_loop
    from ._version import __version__ as __version__

__all__ = [
    "AuthorizationError",
    "BlockingResourceSubscription",
    "BlockingToolset",
    "CircuitOpenError",
    "ClientCredentials",
    "ConfigError",
    "FileTokenStore",
    "HandlerError",
    "Handlers",
    "InProcessServer",
    "InvalidArgumentsError",
    "InvalidResultError",
    "Limits",
    "MCPPool",
    "MCPPoolError",
    "MalformedResponseError",
    "MemoryTokenStore",
    "NotSupportedError",
    "OAuth",
    "OfferedTool",
    "PoolClosedError",
    "PoolOptions",
    "Portal",
    "PrometheusCollector",
    "ReconnectPolicy",
    "RequestFailedError",
    "ResourceSubscription",
    "ResourceUpdate",
    "ResponseTooLargeError",
    "ServerConfig",
    "ServerDisconnectedError",
    "ServerInfo",
    "ServerOverloadedError",
    "ServerRemovedError",
    "ServerState",
    "ServerStatistics",
    "ServerUnavailableError",
    "Skill",
    "SkillEntry",
    "SkillFile",
    "SkillVerificationError",
    "SseServer",
    "StdioServer",
    "StreamableHttpServer",
    "TemplateError",
    "TenantPools",
    "TokenStore",
    "ToolCall",
    "ToolCallTimeout",
    "ToolConfig",
    "Toolset",
    "UnknownServerError",
    "UnknownToolError",
    "WorkloadIdentity",
    "__version__",
    "accept_with_defaults",
    "load_servers",
    "open_mcp_pool",
    "result_text",
    "run_tool_loop",
    "serve_mcp_pool",
    "serve_tenant_pools",
    "shutdown_all",
    "start_portal",
    "to_anthropic_tool",
    "to_gemini_tool",
    "to_openai_tool",
    "to_responses_tool",
]

# Everything but the errors and the version is imported on first use: the MCP SDK takes
# seconds to import, and ``trio-mcp --help`` or ``import trio_mcp`` should not wait for it.
_LAZY = {
    "ClientCredentials": "_auth",
    "FileTokenStore": "_auth",
    "MemoryTokenStore": "_auth",
    "OAuth": "_auth",
    "TokenStore": "_auth",
    "WorkloadIdentity": "_auth",
    "InProcessServer": "_config",
    "Limits": "_config",
    "ReconnectPolicy": "_config",
    "ServerConfig": "_config",
    "SseServer": "_config",
    "StdioServer": "_config",
    "StreamableHttpServer": "_config",
    "Handlers": "_handlers",
    "accept_with_defaults": "_handlers",
    "ServerInfo": "_info",
    "load_servers": "_loader",
    "to_anthropic_tool": "_openai",
    "to_gemini_tool": "_openai",
    "to_openai_tool": "_openai",
    "to_responses_tool": "_openai",
    "PoolOptions": "_options",
    "MCPPool": "_pool",
    "ToolCall": "_pool",
    "open_mcp_pool": "_pool",
    "serve_mcp_pool": "_pool",
    "Portal": "_portal",
    "shutdown_all": "_portal",
    "start_portal": "_portal",
    "PrometheusCollector": "_prometheus",
    "result_text": "_results",
    "ServerState": "_server",
    "ServerStatistics": "_server",
    "Skill": "_skills",
    "SkillEntry": "_skills",
    "SkillFile": "_skills",
    "BlockingResourceSubscription": "_subscriptions",
    "ResourceSubscription": "_subscriptions",
    "ResourceUpdate": "_subscriptions",
    "TenantPools": "_tenants",
    "serve_tenant_pools": "_tenants",
    "BlockingToolset": "_toolset",
    "OfferedTool": "_toolset",
    "ToolConfig": "_toolset",
    "Toolset": "_toolset",
    "run_tool_loop": "_toolset",
    "__version__": "_version",
}


def _public(obj: object) -> None:
    """Show the public path in reprs, tracebacks and docs."""
    if getattr(obj, "__module__", "").startswith("trio_mcp._"):
        try:
            obj.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover
            pass


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
    _public(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


for _name in __all__:
    if _name not in _LAZY:
        _public(globals()[_name])
del _name
