"""The ``trio-mcp`` command: poke at the servers of a config file from a shell.

::

    trio-mcp tools CONFIG [--server NAME] [--json]
    trio-mcp call CONFIG SERVER TOOL [--args JSON] [--timeout S]
    trio-mcp check CONFIG [--json]
    trio-mcp login CONFIG SERVER [--no-browser]
    trio-mcp logout CONFIG SERVER

``CONFIG`` is an ``mcpServers`` / VS Code ``servers`` JSON file (see
:func:`trio_mcp.load_servers`). ``--var NAME=VALUE`` fills ``${NAME}`` placeholders;
``--env`` fills them from the environment. A server whose ``auth`` is ``oauth`` asks
for a login when first used (its address is printed, and opened in the browser);
``login`` does just that, keeping the tokens for later runs, and ``logout`` forgets them.

Exit codes: 0 success; 1 the tool ran and reported an error; 2 bad usage or config;
3 a server could not be reached or a request failed; 130 interrupted. Errors go to
stderr, one line each, results to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import webbrowser
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TextIO

import attrs
import trio

from ._auth import AuthConfig, OAuth, store_of, token_key
from ._config import ServerConfig, SseServer, StreamableHttpServer
from ._errors import ConfigError, MCPPoolError, TemplateError, UnknownServerError
from ._loader import load_servers
from ._pool import MCPPool, open_mcp_pool
from ._results import result_text

__all__ = ["main"]

EXIT_OK, EXIT_TOOL_ERROR, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-mcp", description="List, call and check the MCP servers of a config file."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("config", help="an mcpServers (or VS Code servers) JSON file")
    common.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="fill ${NAME} placeholders"
    )
    common.add_argument("--env", action="store_true", help="fill placeholders from the environment")
    common.add_argument("--connect-timeout", type=float, default=10.0, metavar="S")
    commands = parser.add_subparsers(dest="command", required=True)
    tools = commands.add_parser("tools", parents=[common], help="list every server's tools")
    tools.add_argument("--server", action="append", metavar="NAME", help="only this server (repeatable)")
    tools.add_argument("--json", action="store_true", help="machine-readable output")
    call = commands.add_parser("call", parents=[common], help="call one tool and print its result")
    call.add_argument("server")
    call.add_argument("tool")
    call.add_argument("--args", default="{}", metavar="JSON", help="the arguments, a JSON object")
    call.add_argument("--timeout", type=float, default=60.0, metavar="S")
    call.add_argument("--json", action="store_true", help="print the whole result as JSON")
    check = commands.add_parser("check", parents=[common], help="connect to every server and report")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    login = commands.add_parser("login", parents=[common], help="log in to a server and keep its tokens")
    login.add_argument("server")
    login.add_argument("--no-browser", action="store_true", help="print the login address only")
    logout = commands.add_parser("logout", parents=[common], help="forget a server's stored tokens")
    logout.add_argument("server")
    return parser


def _variables(options: argparse.Namespace) -> dict[str, str]:
    variables: dict[str, str] = dict(os.environ) if options.env else {}
    for item in options.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var expects NAME=VALUE, got {name or item!r}")
        variables[name] = value
    return variables


def _one_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


async def _tools(pool: MCPPool, names: Sequence[str], as_json: bool, out: TextIO, err: TextIO) -> int:
    listings: dict[str, Any] = {}

    async def fetch(name: str) -> None:
        try:
            listings[name] = await pool.list_tools(name)
        except MCPPoolError as error:
            listings[name] = error

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(fetch, name)
    status = EXIT_OK
    if as_json:
        document: dict[str, Any] = {}
        for name in names:
            value = listings[name]
            if isinstance(value, MCPPoolError):
                document[name] = {"error": str(value)}
                status = EXIT_FAILED
            else:
                document[name] = {
                    "tools": [
                        tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in value
                    ]
                }
        json.dump(document, out, indent=2)
        out.write("\n")
        return status
    rows: list[tuple[str, str, str]] = []
    for name in names:
        value = listings[name]
        if isinstance(value, MCPPoolError):
            print(f"trio-mcp: {value}", file=err)
            status = EXIT_FAILED
            continue
        rows.extend((name, tool.name, _one_line(tool.description)) for tool in value)
    if rows:
        widths = [max(len(row[i]) for row in [("SERVER", "TOOL", ""), *rows]) for i in (0, 1)]
        print(f"{'SERVER':{widths[0]}}  {'TOOL':{widths[1]}}  DESCRIPTION", file=out)
        for server, tool, description in rows:
            print(f"{server:{widths[0]}}  {tool:{widths[1]}}  {description}", file=out)
    return status


async def _call(pool: MCPPool, options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        arguments = json.loads(options.args)
    except json.JSONDecodeError as error:
        print(f"trio-mcp: --args is not valid JSON ({error.msg})", file=err)
        return EXIT_USAGE
    if not isinstance(arguments, dict):
        print("trio-mcp: --args must be a JSON object", file=err)
        return EXIT_USAGE
    with trio.move_on_after(options.timeout) as scope:
        result = await pool.tool_call(options.server, options.tool, arguments)
    if scope.cancelled_caught:
        print(f"trio-mcp: the call did not finish within {options.timeout:g}s", file=err)
        return EXIT_FAILED
    if options.json:
        json.dump(result.model_dump(mode="json", by_alias=True, exclude_none=True), out, indent=2)
        out.write("\n")
    else:
        text = result_text(result)
        print(text, file=err if result.is_error else out)
    return EXIT_TOOL_ERROR if result.is_error else EXIT_OK


async def _check(pool: MCPPool, as_json: bool, out: TextIO) -> int:
    report: dict[str, dict[str, Any]] = {}

    async def probe(name: str) -> None:
        start = trio.current_time()
        try:
            tools = await pool.list_tools(name)
        except MCPPoolError as error:
            report[name] = {
                "ok": False,
                "error": str(error),
                "seconds": round(trio.current_time() - start, 3),
            }
        else:
            report[name] = {"ok": True, "tools": len(tools), "seconds": round(trio.current_time() - start, 3)}

    async with trio.open_nursery() as nursery:
        for name in pool.servers:
            nursery.start_soon(probe, name)
    if as_json:
        json.dump({name: report[name] for name in pool.servers}, out, indent=2)
        out.write("\n")
    else:
        width = max(len(name) for name in pool.servers)
        for name in pool.servers:
            entry = report[name]
            state = f"ok     {entry['tools']} tools" if entry["ok"] else f"FAILED {entry['error']}"
            print(f"{name:{width}}  {entry['seconds']:7.3f}s  {state}", file=out)
    return EXIT_OK if all(entry["ok"] for entry in report.values()) else EXIT_FAILED


def _login_opener(err: TextIO, *, browser: bool) -> Callable[[str], Awaitable[None]]:
    """How the command shows a login address: printed, and opened in the browser."""

    async def open_url(url: str) -> None:
        print(f"trio-mcp: log in at this address{' (opening your browser)' if browser else ''}:", file=err)
        print(f"  {url}", file=err, flush=True)
        if browser:
            await trio.to_thread.run_sync(webbrowser.open, url)

    return open_url


def _with_login(
    config: ServerConfig, opener: Callable[[str], Awaitable[None]], *, force: bool
) -> ServerConfig:
    """``config``, its OAuth showing login addresses with ``opener`` (and asking, if ``force``)."""
    if not isinstance(config, StreamableHttpServer | SseServer):
        return config
    auth = config.auth
    if not isinstance(auth, OAuth) or (auth.open_url is not None and not force):
        return config
    return attrs.evolve(
        config, auth=attrs.evolve(auth, open_url=opener, interactive=force or auth.interactive)
    )


def _auth_of(
    servers: Mapping[str, ServerConfig], name: str, config_path: str
) -> tuple[StreamableHttpServer | SseServer, AuthConfig]:
    config = servers.get(name)
    if config is None:
        raise UnknownServerError(f"no server named {name!r} in {config_path}")
    if not isinstance(config, StreamableHttpServer | SseServer) or not isinstance(config.auth, AuthConfig):
        raise ConfigError(f"server {name!r} has no 'auth' (oauth or client_credentials) to log in with")
    return config, config.auth


async def _login(
    options: argparse.Namespace, servers: Mapping[str, ServerConfig], out: TextIO, err: TextIO
) -> int:
    name = options.server
    config, _auth = _auth_of(servers, name, options.config)
    opener = _login_opener(err, browser=not options.no_browser)
    async with open_mcp_pool(
        {name: _with_login(config, opener, force=True)},
        variables=_variables(options),
        connect_timeout=options.connect_timeout,
        call_timeout=math.inf,
    ) as pool:
        tools = await pool.list_tools(name)
    print(f"logged in to {name!r} ({len(tools)} tools)", file=out)
    return EXIT_OK


async def _logout(options: argparse.Namespace, servers: Mapping[str, ServerConfig], out: TextIO) -> int:
    name = options.server
    config, auth = _auth_of(servers, name, options.config)
    removed = await store_of(auth).delete(token_key(config.url))
    print(f"logged out of {name!r}" if removed else f"no stored tokens for {name!r}", file=out)
    return EXIT_OK


async def _run(
    options: argparse.Namespace, servers: Mapping[str, ServerConfig], out: TextIO, err: TextIO
) -> int:
    if options.command == "login":
        return await _login(options, servers, out, err)
    if options.command == "logout":
        return await _logout(options, servers, out)
    opener = _login_opener(err, browser=True)
    servers = {name: _with_login(config, opener, force=False) for name, config in servers.items()}
    async with open_mcp_pool(
        servers,
        variables=_variables(options),
        connect_timeout=options.connect_timeout,
        call_timeout=math.inf,
    ) as pool:
        if options.command == "tools":
            names = options.server or list(servers)
            for name in names:
                if name not in servers:
                    raise UnknownServerError(f"no server named {name!r} in {options.config}")
            return await _tools(pool, names, options.json, out, err)
        if options.command == "call":
            return await _call(pool, options, out, err)
        return await _check(pool, options.json, out)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else EXIT_USAGE
    try:
        servers = load_servers(options.config)
        if not servers:
            raise ConfigError(f"{options.config} names no servers")
        return trio.run(_run, options, servers, out, err)
    except (ConfigError, TemplateError, UnknownServerError) as error:
        print(f"trio-mcp: {error}", file=err)
        return EXIT_USAGE
    except MCPPoolError as error:
        print(f"trio-mcp: {error}", file=err)
        return EXIT_FAILED
    except (KeyboardInterrupt, BaseExceptionGroup) as error:
        # Ctrl-C may land in one of our nurseries (the probes run in parallel): a group.
        if isinstance(error, BaseExceptionGroup) and error.subgroup(KeyboardInterrupt) is None:
            raise
        print("trio-mcp: interrupted", file=err)
        return EXIT_INTERRUPTED


def entry_point() -> None:
    """The ``trio-mcp`` console script."""
    raise SystemExit(main())
