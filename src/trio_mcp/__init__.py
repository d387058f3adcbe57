"""trio-mcp: a trio-native, structured-concurrency client pool for MCP servers.

In a trio program::

    async with trio_mcp.open_mcp_pool({"files": trio_mcp.StdioServer("mcp-files")}) as pool:
        result = await pool.tool_call("files", "read", {"path": "README.md"})

From threaded code, a portal thread runs the pool::

    with trio_mcp.start_portal({"files": ...}) as portal:
        result = portal.tool_call("files", "read", {"path": "README.md"})
"""

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
from ._errors import AuthorizationError as AuthorizationError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import HandlerError as HandlerError
from ._errors import InvalidArgumentsError as InvalidArgumentsError
from ._errors import MCPPoolError as MCPPoolError
from ._errors import PoolClosedError as PoolClosedError
from ._errors import RequestFailedError as RequestFailedError
from ._errors import ServerDisconnectedError as ServerDisconnectedError
from ._errors import ServerOverloadedError as ServerOverloadedError
from ._errors import ServerUnavailableError as ServerUnavailableError
from ._errors import TemplateError as TemplateError
from ._errors import ToolCallTimeout as ToolCallTimeout
from ._errors import UnknownServerError as UnknownServerError
from ._errors import UnknownToolError as UnknownToolError
from ._handlers import Handlers as Handlers
from ._handlers import accept_with_defaults as accept_with_defaults
from ._loader import load_servers as load_servers
from ._openai import to_openai_tool as to_openai_tool
from ._pool import MCPPool as MCPPool
from ._pool import ToolCall as ToolCall
from ._pool import open_mcp_pool as open_mcp_pool
from ._pool import serve_mcp_pool as serve_mcp_pool
from ._portal import BlockingToolset as BlockingToolset
from ._portal import Portal as Portal
from ._portal import close_portals as close_portals
from ._portal import shutdown_all as shutdown_all
from ._portal import start_portal as start_portal
from ._results import result_text as result_text
from ._server import ServerState as ServerState
from ._server import ServerStatistics as ServerStatistics
from ._tenants import TenantPools as TenantPools
from ._tenants import serve_tenant_pools as serve_tenant_pools
from ._toolset import ToolConfig as ToolConfig
from ._toolset import Toolset as Toolset
from ._toolset import run_tool_loop as run_tool_loop
from ._version import __version__ as __version__

__all__ = [
    "AuthorizationError",
    "BlockingToolset",
    "CircuitOpenError",
    "ClientCredentials",
    "ConfigError",
    "FileTokenStore",
    "HandlerError",
    "Handlers",
    "InProcessServer",
    "InvalidArgumentsError",
    "Limits",
    "MCPPool",
    "MCPPoolError",
    "MemoryTokenStore",
    "OAuth",
    "PoolClosedError",
    "Portal",
    "ReconnectPolicy",
    "RequestFailedError",
    "ServerConfig",
    "ServerDisconnectedError",
    "ServerOverloadedError",
    "ServerState",
    "ServerStatistics",
    "ServerUnavailableError",
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
    "close_portals",
    "load_servers",
    "open_mcp_pool",
    "result_text",
    "run_tool_loop",
    "serve_mcp_pool",
    "serve_tenant_pools",
    "shutdown_all",
    "start_portal",
    "to_openai_tool",
]

# Show the public path in reprs, tracebacks and docs.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trio_mcp._"):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover
            pass
del _name, _obj
