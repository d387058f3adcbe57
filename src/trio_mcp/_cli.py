"""The ``trio-mcp`` command: poke at the servers of a config file from a shell.

::

    trio-mcp tools CONFIG [--server NAME] [--json | --wide]
    trio-mcp call CONFIG SERVER TOOL [--args JSON|@FILE|KEY=VALUE ...] [--timeout S] [--json]
    trio-mcp check CONFIG [--json]
    trio-mcp login CONFIG SERVER [--no-browser]
    trio-mcp logout CONFIG SERVER

``CONFIG`` is an ``mcpServers`` / VS Code ``servers`` JSON file (see
:func:`trio_mcp.load_servers`). ``--var NAME=VALUE`` fills ``${NAME}`` placeholders;
``--env`` fills them from the environment. A server whose ``auth`` is ``oauth`` asks
for a login when first used (its address is printed, and opened in the browser);
``login`` does just that, keeping the tokens for later runs, and ``logout`` forgets them.

Stdio servers' stderr is captured (``stderr="log"``) and shown only for a server that
failed, after the error (``--verbose``: every line, as it comes). ``call`` shows the
tool's progress and the server's log messages on stderr as they arrive.

Exit codes: 0 success; 1 the tool ran and reported an error; 2 bad usage or config
(including an unknown server or tool); 3 a server could not be reached or a request
failed; 130 interrupted (the command ends by SIGINT, which a shell reports as 130).
Errors go to stderr, one line each, results to stdout.

The pool (and so the MCP SDK) is imported only once a command runs, so that
``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import difflib
import json
import logging
import math
import os
import shutil
import sys
import webbrowser
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import ConfigError, MCPPoolError, TemplateError, UnknownServerError, UnknownToolError
from ._version import __version__

if TYPE_CHECKING:
    import mcp.types as types

    from ._auth import AuthConfig
    from ._config import ServerConfig, SseServer, StreamableHttpServer
    from ._pool import MCPPool

__all__ = ["main"]

EXIT_OK, EXIT_TOOL_ERROR, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_EXIT_CODES = """exit codes:
  0    success
  1    the tool ran and reported an error (its text on stderr)
  2    bad usage or config: unknown server or tool, missing variable, bad --args
  3    a server could not be reached, or a request failed or timed out
  130  interrupted"""
#: When stdout is no terminal (and $COLUMNS is unset), the table is this wide.
_FALLBACK_COLUMNS = 100
#: Lines of stderr kept per server, to show if it fails (the last ones).
_KEPT_LINES = 200


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-mcp",
        description="List, call and check the MCP servers of a config file.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trio-mcp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("config", help="an mcpServers (Claude Desktop, Cursor) or VS Code servers JSON file")
    common.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fill ${NAME} (also ${env:NAME}, ${input:NAME}) placeholders; repeatable",
    )
    common.add_argument(
        "--env", action="store_true", help="fill placeholders from the environment (before --var)"
    )
    common.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to connect to each server (default: %(default)s)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show every stdio server's stderr as it comes (default: only a failed server's)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, more: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name, parents=[common], help=summary, description=summary.capitalize() + more
        )

    tools = command("tools", "list every server's tools")
    tools.add_argument("--server", action="append", metavar="NAME", help="only this server (repeatable)")
    shape = tools.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="the full tool objects, as JSON")
    shape.add_argument("--wide", action="store_true", help="do not cut descriptions to the terminal's width")
    call = command("call", "call one tool and print its result", " (progress and log messages on stderr)")
    call.add_argument("server", help="the server's name in CONFIG")
    call.add_argument("tool", help="the tool's name (see `trio-mcp tools`)")
    call.add_argument(
        "--args",
        nargs="+",
        action="extend",
        default=[],
        metavar="JSON|@FILE|KEY=VALUE",
        help="the arguments: a JSON object, @file.json, or KEY=VALUE pairs (a VALUE is JSON "
        "unless the tool's schema wants a string); combined in order",
    )
    call.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="seconds for the call (default: %(default)s)"
    )
    call.add_argument("--json", action="store_true", help="print the whole result as JSON")
    check = command("check", "connect to every server at once and report", ", a line for each as it finishes")
    check.add_argument("--json", action="store_true", help="one JSON report at the end")
    login = command("login", "log in to a server and keep its tokens", "")
    login.add_argument("server", help="the server's name in CONFIG")
    login.add_argument("--no-browser", action="store_true", help="print the login address only")
    logout = command("logout", "forget a server's stored tokens", "")
    logout.add_argument("server", help="the server's name in CONFIG")
    return parser


def _variables(options: argparse.Namespace) -> dict[str, str]:
    variables: dict[str, str] = dict(os.environ) if options.env else {}
    for item in options.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var expects NAME=VALUE, got {name or item!r}")
        variables[name] = value
    return variables


def _did_you_mean(kind: str, name: str, known: Iterable[str], where: str) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3)
    message = f"no {kind} named {name!r} {where}"
    if close:
        message += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    if known and len(known) <= 20:
        message += f"; {kind}s: {', '.join(known)}"
    return message


def _one_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


class _ServerOutput(logging.Handler):
    """The stdio servers' stderr lines (``trio_mcp.server.<name>``), kept per server."""

    def __init__(self, err: TextIO, verbose: bool) -> None:
        super().__init__(logging.INFO)
        self.err = err
        self.verbose = verbose
        self.lines: dict[str, collections.deque[str]] = {}
        self.failed: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        server = record.name.removeprefix("trio_mcp.server.")
        line = record.getMessage()
        if self.verbose:
            print(f"[{server}] {line}", file=self.err)
        else:
            self.lines.setdefault(server, collections.deque(maxlen=_KEPT_LINES)).append(line)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        logger = logging.getLogger("trio_mcp.server")
        level, propagate = logger.level, logger.propagate
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(self)
        try:
            yield
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate

    def report(self) -> None:
        """Show what each failed server wrote on stderr."""
        for server in sorted(self.failed):
            lines = self.lines.get(server)
            if lines:
                print(f"trio-mcp: server {server!r} wrote on stderr:", file=self.err)
                for line in lines:
                    print(f"  {line}", file=self.err)


async def _tools(
    pool: MCPPool,
    names: Sequence[str],
    options: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    failed: set[str],
) -> int:
    import trio

    listings: dict[str, Any] = {}

    async def fetch(name: str) -> None:
        try:
            listings[name] = await pool.list_tools(name)
        except MCPPoolError as error:
            listings[name] = error
            failed.add(name)

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(fetch, name)
    status = EXIT_FAILED if failed else EXIT_OK
    if options.json:
        document: dict[str, Any] = {}
        for name in names:
            value = listings[name]
            if isinstance(value, MCPPoolError):
                document[name] = {"error": str(value)}
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
            continue
        rows.extend((name, tool.name, _one_line(tool.description)) for tool in value)
    if rows:
        widths = [max(len(row[i]) for row in [("SERVER", "TOOL", ""), *rows]) for i in (0, 1)]
        columns = shutil.get_terminal_size((_FALLBACK_COLUMNS, 24)).columns
        room = math.inf if options.wide else max(columns - widths[0] - widths[1] - 4, 12)
        print(f"{'SERVER':{widths[0]}}  {'TOOL':{widths[1]}}  DESCRIPTION", file=out)
        for server, tool, description in rows:
            shown = description if room == math.inf else _cut(description, int(room))
            print(f"{server:{widths[0]}}  {tool:{widths[1]}}  {shown}".rstrip(), file=out)
    return status


def _read_arguments(items: Sequence[str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``--args`` as a JSON object so far, and the ``KEY=VALUE`` pairs still to be typed."""
    arguments: dict[str, Any] = {}
    pairs: list[tuple[str, str]] = []
    for item in items:
        if item.startswith("@"):
            try:
                text = Path(item[1:]).read_text(encoding="utf-8")
            except OSError as error:
                raise ConfigError(f"--args {item}: cannot read the file ({error.strerror})") from None
            what = f"--args {item}"
        elif item.lstrip().startswith("{"):
            text, what = item, "--args"
        else:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--args expects a JSON object, @FILE or KEY=VALUE, got {item!r}")
            pairs.append((key, value))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{what} is not valid JSON ({error.msg}, line {error.lineno})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{what} must be a JSON object")
        arguments.update(value)
    return arguments, pairs


def _wants_string(schema: Any) -> bool:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def _typed(value: str, schema: Any) -> Any:
    """A ``KEY=VALUE`` value: as is where the schema wants a string, else JSON if it parses."""
    if _wants_string(schema):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


async def _call(pool: MCPPool, options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import trio

    arguments, pairs = _read_arguments(options.args)
    # The listing is cached (the pool checks arguments against it anyway).
    tools = {tool.name: tool for tool in await pool.list_tools(options.server)}
    tool = tools.get(options.tool)
    if tool is None:
        raise UnknownToolError(
            _did_you_mean("tool", options.tool, tools, f"on server {options.server!r}"),
            server=options.server,
            tool=options.tool,
        )
    properties = (tool.input_schema or {}).get("properties") or {}
    for key, value in pairs:
        arguments[key] = _typed(value, properties.get(key))

    def progress(done: float, total: float | None, message: str | None) -> None:
        of = f"/{total:g}" if total is not None else ""
        print(f"trio-mcp: progress {done:g}{of}" + (f" {message}" if message else ""), file=err)

    with trio.move_on_after(options.timeout) as scope:
        result = await pool.tool_call(options.server, options.tool, arguments, progress=progress)
    if scope.cancelled_caught:
        print(f"trio-mcp: the call did not finish within {options.timeout:g}s", file=err)
        return EXIT_FAILED
    if options.json:
        json.dump(result.model_dump(mode="json", by_alias=True, exclude_none=True), out, indent=2)
        out.write("\n")
    else:
        from ._results import result_text

        print(result_text(result), file=err if result.is_error else out)
    return EXIT_TOOL_ERROR if result.is_error else EXIT_OK


async def _check(pool: MCPPool, as_json: bool, out: TextIO, failed: set[str]) -> int:
    import trio

    report: dict[str, dict[str, Any]] = {}
    width = max(len(name) for name in pool.servers)

    async def probe(name: str) -> None:
        start = trio.current_time()
        try:
            tools = await pool.list_tools(name)
        except MCPPoolError as error:
            entry: dict[str, Any] = {"ok": False, "error": str(error)}
            failed.add(name)
        else:
            entry = {"ok": True, "tools": len(tools)}
        entry["seconds"] = round(trio.current_time() - start, 3)
        report[name] = entry
        if not as_json:  # as each finishes: a server that hangs holds up only its own line
            state = f"ok     {entry['tools']} tools" if entry["ok"] else f"FAILED {entry['error']}"
            print(f"{name:{width}}  {entry['seconds']:7.3f}s  {state}", file=out, flush=True)

    async with trio.open_nursery() as nursery:
        for name in pool.servers:
            nursery.start_soon(probe, name)
    if as_json:
        json.dump({name: report[name] for name in pool.servers}, out, indent=2)
        out.write("\n")
    return EXIT_FAILED if failed else EXIT_OK


def _log_message(err: TextIO) -> Any:
    def show(server: str, params: types.LoggingMessageNotificationParams) -> None:
        data = params.data if isinstance(params.data, str) else json.dumps(params.data)
        source = f" {params.logger}" if params.logger else ""
        print(f"trio-mcp: [{server}{source}] {params.level}: {data}", file=err)

    return show


def _login_opener(err: TextIO, *, browser: bool) -> Callable[[str], Awaitable[None]]:
    """How the command shows a login address: printed, and opened in the browser."""

    async def open_url(url: str) -> None:
        import trio

        print(f"trio-mcp: log in at this address{' (opening your browser)' if browser else ''}:", file=err)
        print(f"  {url}", file=err, flush=True)
        if browser:
            await trio.to_thread.run_sync(webbrowser.open, url)

    return open_url


def _with_login(
    config: ServerConfig, opener: Callable[[str], Awaitable[None]], *, force: bool
) -> ServerConfig:
    """``config``, its OAuth showing login addresses with ``opener`` (and asking, if ``force``)."""
    import attrs

    from ._auth import OAuth
    from ._config import SseServer, StreamableHttpServer

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
    from ._auth import AuthConfig
    from ._config import SseServer, StreamableHttpServer

    config = servers.get(name)
    if config is None:
        raise UnknownServerError(f"no server named {name!r} in {config_path}")
    if not isinstance(config, StreamableHttpServer | SseServer) or not isinstance(config.auth, AuthConfig):
        raise ConfigError(f"server {name!r} has no 'auth' (oauth or client_credentials) to log in with")
    return config, config.auth


async def _login(
    options: argparse.Namespace, servers: Mapping[str, ServerConfig], out: TextIO, err: TextIO
) -> int:
    from ._pool import open_mcp_pool

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
    from ._auth import store_of, token_key

    name = options.server
    config, auth = _auth_of(servers, name, options.config)
    removed = await store_of(auth).delete(token_key(config.url))
    print(f"logged out of {name!r}" if removed else f"no stored tokens for {name!r}", file=out)
    return EXIT_OK


async def _run(
    options: argparse.Namespace,
    servers: Mapping[str, ServerConfig],
    out: TextIO,
    err: TextIO,
    failed: set[str],
) -> int:
    from ._handlers import Handlers
    from ._pool import open_mcp_pool

    # call: log messages show as they come; tools and check: only with --verbose.
    shown = options.command == "call" or options.verbose
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
        handlers=Handlers(logging=_log_message(err) if shown else lambda _server, _params: None),
    ) as pool:
        if options.command == "tools":
            return await _tools(pool, options.server or list(servers), options, out, err, failed)
        if options.command == "call":
            try:
                code = await _call(pool, options, out, err)
            except MCPPoolError:
                failed.add(options.server)
                raise
            if code != EXIT_OK:
                failed.add(options.server)
            return code
        return await _check(pool, options.json, out, failed)


def _check_server_names(options: argparse.Namespace, servers: Mapping[str, Any]) -> None:
    single = options.command in ("call", "login", "logout")
    wanted = [options.server] if single else getattr(options, "server", None) or []
    for name in wanted:
        if name not in servers:
            raise UnknownServerError(_did_you_mean("server", name, servers, f"in {options.config}"))


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            options = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else EXIT_USAGE
    output = _ServerOutput(err, options.verbose)
    try:
        import trio

        from ._loader import load_servers

        servers = load_servers(options.config, stderr="log")
        if not servers:
            raise ConfigError(f"{options.config} names no servers")
        _check_server_names(options, servers)
        with output.installed():
            # Ctrl-C reaches the main task at its next checkpoint, never as a
            # KeyboardInterrupt raised wherever Python happens to be: inside a weakref
            # callback (as importlib's module locks run during a lazy import) that one
            # is printed and dropped, and the command would wait out its timeouts.
            return trio.run(
                _run,
                options,
                servers,
                out,
                err,
                output.failed,
                restrict_keyboard_interrupt_to_checkpoints=True,
            )
    except (ConfigError, TemplateError, UnknownServerError, UnknownToolError) as error:
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
    finally:
        output.report()


def entry_point() -> None:
    """The ``trio-mcp`` console script."""
    code = main()
    if code == EXIT_INTERRUPTED:
        _die_of_sigint()
    raise SystemExit(code)


def _die_of_sigint() -> None:
    """End the process by SIGINT, as an interrupted program should.

    The shell reports it as 130, and a script that ran us stops too (after a plain
    ``exit(130)`` it would carry on). It is also the only outcome that does not depend
    on where the Ctrl-C landed: CPython itself ends a ``python -m`` run this way after a
    ``KeyboardInterrupt`` it saw go by, even once the program has handled it.
    """
    import signal

    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
