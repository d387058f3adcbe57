"""Config files in the mcpServers / VS Code shapes, and the trio-mcp command end to end."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import trio_mcp
from trio_mcp._cli import _parser, main

from .conftest import SERVER, HttpServer, free_port

BANNER = "banner line 1\nbanner line 2\n"


def write_config(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(data))
    return str(path)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def config_file(tmp_path: Path, http_server: HttpServer) -> str:
    return write_config(
        tmp_path,
        {
            "mcpServers": {
                "local": {"command": sys.executable, "args": [SERVER], "env": {"TOKEN": "${token}"}},
                "remote": {
                    "url": http_server.http_url,
                    "type": "http",
                    "headers": {"X-Test-Token": "${token}"},
                },
                "legacy": {"url": http_server.sse_url, "type": "sse", "disabled": False, "autoApprove": []},
            }
        },
    )


# -- load_servers ---------------------------------------------------------------------


def test_load_claude_style(tmp_path: Path) -> None:
    servers = trio_mcp.load_servers(
        {
            "mcpServers": {
                "a": {"command": "npx", "args": ["-y", "pkg"], "env": {"K": "v"}, "cwd": "/tmp"},
                "b": {"url": "https://example.com/mcp"},
                "c": {
                    "url": "https://example.com/sse",
                    "type": "sse",
                    "headers": {"Authorization": "Bearer ${T}"},
                },
                "d": {"url": "https://example.com/mcp", "type": "streamable-http", "unknownKey": 1},
            }
        }
    )
    assert servers["a"] == trio_mcp.StdioServer("npx", ["-y", "pkg"], env={"K": "v"}, cwd="/tmp")
    assert isinstance(servers["b"], trio_mcp.StreamableHttpServer)
    assert isinstance(servers["c"], trio_mcp.SseServer) and servers["c"].headers == {
        "Authorization": "Bearer ${T}"
    }
    assert isinstance(servers["d"], trio_mcp.StreamableHttpServer)
    path = write_config(tmp_path, {"mcpServers": {"a": {"command": "x"}}})
    assert trio_mcp.load_servers(path) == {"a": trio_mcp.StdioServer("x")}
    assert trio_mcp.load_servers(Path(path)) == {"a": trio_mcp.StdioServer("x")}


def test_load_vscode_style() -> None:
    servers = trio_mcp.load_servers(
        {
            "inputs": [{"id": "key", "type": "promptString"}],
            "servers": {
                "s": {"type": "stdio", "command": "uvx", "args": ["srv"], "env": {"KEY": "${input:key}"}},
                "h": {"type": "http", "url": "https://x/mcp", "headers": {"A": "${env:TOKEN}"}},
            },
        }
    )
    assert servers["s"] == trio_mcp.StdioServer("uvx", ["srv"], env={"KEY": "${key}"})
    assert servers["h"].headers == {"A": "${TOKEN}"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"mcpServers": {"x": {"args": []}}}, "server 'x': needs a 'command'"),
        ({"mcpServers": {"x": {"type": "stdio"}}}, "server 'x': field 'command'"),
        ({"mcpServers": {"x": {"url": "https://h/m", "type": "ws"}}}, "server 'x': field 'type'"),
        ({"mcpServers": {"x": {"command": "c", "args": "a b"}}}, "server 'x': field 'args'"),
        ({"mcpServers": {"x": {"command": "c", "env": {"A": ["v"]}}}}, r"server 'x': field env\['A'\]"),
        ({"mcpServers": {"x": {"url": "ftp://h"}}}, "server 'x': url"),
        ({"mcpServers": {"x": "npx"}}, "server 'x': expected an object"),
        ({"mcpServers": []}, "must be an object"),
        ([], "JSON object"),
    ],
)
def test_bad_entries_name_server_and_field(data: Any, match: str) -> None:
    with pytest.raises(trio_mcp.ConfigError, match=match):
        trio_mcp.load_servers(data)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(trio_mcp.ConfigError, match="does not exist"):
        trio_mcp.load_servers(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(trio_mcp.ConfigError, match="not valid JSON"):
        trio_mcp.load_servers(broken)


async def test_env_placeholders_reach_a_stdio_server() -> None:
    server = trio_mcp.StdioServer(sys.executable, [SERVER], env={"TOKEN": "${token}", "LITERAL": "$$HOME"})
    async with trio_mcp.open_mcp_pool({"s": server}, variables={"token": "t-123"}) as pool:
        assert trio_mcp.result_text(await pool.tool_call("s", "getenv", {"name": "TOKEN"})) == "t-123"
        assert trio_mcp.result_text(await pool.tool_call("s", "getenv", {"name": "LITERAL"})) == "$HOME"
    async with trio_mcp.open_mcp_pool({"s": server}) as pool:
        with pytest.raises(trio_mcp.TemplateError, match="environment variable 'TOKEN' of server 's'"):
            await pool.tool_call("s", "getenv", {"name": "TOKEN"})


def test_placeholders_in_args_url_and_cwd_of_a_config_file(tmp_path: Path, http_server: HttpServer) -> None:
    port = http_server.http_url.split(":")[2].split("/")[0]
    path = write_config(
        tmp_path,
        {
            "servers": {
                "files": {
                    "type": "stdio",
                    "command": sys.executable,
                    "args": [SERVER, "stdio", "--root=${env:FSROOT}", "a$b", "$${literal}"],
                    "cwd": "${input:workdir}",
                },
                "remote": {"type": "http", "url": "http://127.0.0.1:${PORT}/mcp"},
            }
        },
    )
    variables = ["--var", f"FSROOT={tmp_path}", "--var", f"workdir={tmp_path}", "--var", f"PORT={port}"]
    code, out, err = run_cli("call", path, "files", "argv", "--json", *variables)
    assert code == 0, err
    assert json.loads(out)["structuredContent"]["result"] == [
        "stdio",
        f"--root={tmp_path}",
        "a$b",
        "${literal}",
    ]
    code, out, err = run_cli("call", path, "files", "cwd", *variables)
    assert (code, out) == (0, f"{tmp_path}\n"), err
    code, out, err = run_cli("call", path, "remote", "add", "--args", '{"a": 1, "b": 2}', *variables)
    assert (code, out) == (0, "3\n"), err
    # A missing one is a usage error naming the server, the field and the placeholder.
    code, _, err = run_cli("call", path, "files", "argv", "--var", f"workdir={tmp_path}")
    assert code == 2 and "args[2] of server 'files' uses ${FSROOT}" in err
    code, _, err = run_cli("call", path, "remote", "argv")
    assert code == 2 and "url of server 'remote' uses ${PORT}" in err


async def test_a_url_is_checked_once_filled_and_never_shows_a_value() -> None:
    server = trio_mcp.StreamableHttpServer("http://127.0.0.1:${PORT}/mcp")
    async with trio_mcp.open_mcp_pool({"u": server}, variables={"PORT": "99999-secret"}) as pool:
        with pytest.raises(
            trio_mcp.ConfigError, match=r"server 'u': url .* once its placeholders are filled"
        ) as caught:
            await pool.list_tools("u")
    assert "99999-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: trio_mcp.StdioServer("x", ["ok", "${not-a-name}"]),
            r"args\[1\] has a malformed placeholder",
        ),
        (lambda: trio_mcp.StdioServer("x", cwd="/tmp/${"), "cwd has a malformed placeholder"),
        (lambda: trio_mcp.StreamableHttpServer("https://h/${x"), "url 'https://h/.*' has a malformed"),
        (lambda: trio_mcp.StreamableHttpServer("ftp://${HOST}/x"), None),  # checked once filled
    ],
)
def test_malformed_placeholders_fail_at_construction(make: Any, match: str | None) -> None:
    if match is None:
        make()
    else:
        with pytest.raises(trio_mcp.ConfigError, match=match):
            make()


# -- the command ----------------------------------------------------------------------------


def test_cli_tools_table_and_json(config_file: str) -> None:
    code, out, err = run_cli("tools", config_file, "--var", "token=abc")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["SERVER", "TOOL", "DESCRIPTION"]
    assert {line.split()[0] for line in lines[1:]} == {"local", "remote", "legacy"}
    assert any(line.split()[:2] == ["remote", "echo"] for line in lines)
    code, out, _ = run_cli("tools", config_file, "--var", "token=abc", "--server", "local", "--json")
    assert code == 0
    document = json.loads(out)
    assert list(document) == ["local"]
    assert "echo" in {tool["name"] for tool in document["local"]["tools"]}


def test_cli_call(config_file: str) -> None:
    assert run_cli("call", config_file, "local", "echo", "--args", '{"text": "hi"}', "--var", "token=a") == (
        0,
        "hi\n",
        "",
    )
    code, out, _ = run_cli("call", config_file, "remote", "whoami", "--var", "token=sekret", "--json")
    assert code == 0 and json.loads(out)["structuredContent"] == {"x-test-token": "sekret"}
    code, out, err = run_cli("call", config_file, "local", "fail", "--var", "token=a")
    assert code == 1 and out == "" and "fail" in err
    code, _, err = run_cli("call", config_file, "local", "echo", "--args", "{oops", "--var", "token=a")
    assert code == 2 and "not valid JSON" in err
    code, _, err = run_cli(
        "call",
        config_file,
        "local",
        "slow",
        "--args",
        '{"seconds": 30}',
        "--timeout",
        "0.3",
        "--var",
        "token=a",
    )
    assert code == 3 and "did not finish" in err
    code, _, err = run_cli("call", config_file, "remote", "echo", "--args", '{"text": "x"}')
    assert code == 2 and "token" in err  # a missing variable is a usage error
    code, _, err = run_cli("call", config_file, "nowhere", "echo")
    assert code == 2 and "nowhere" in err
    code, _, err = run_cli("call", config_file, "local", "ecko", "--var", "token=a")
    assert code == 2 and "no tool named 'ecko' on server 'local' (did you mean 'echo'?)" in err


def test_cli_check(tmp_path: Path, http_server: HttpServer) -> None:
    path = write_config(
        tmp_path,
        {
            "mcpServers": {
                "good": {"url": http_server.http_url},
                "bad": {"command": "/nonexistent/server"},
            }
        },
    )
    code, out, _ = run_cli("check", path)
    assert code == 3
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "ok" in lines["good"] and "FAILED" in lines["bad"] and "not found" in lines["bad"]
    code, out, _ = run_cli("check", path, "--json")
    report = json.loads(out)
    assert report["good"]["ok"] is True and report["good"]["tools"] >= 5 and report["bad"]["ok"] is False
    good_only = write_config(tmp_path, {"mcpServers": {"good": {"url": http_server.http_url}}})
    assert run_cli("check", good_only)[0] == 0


def test_cli_usage_errors(tmp_path: Path) -> None:
    assert run_cli()[0] == 2
    assert run_cli("tools", str(tmp_path / "missing.json"))[0] == 2
    empty = write_config(tmp_path, {"mcpServers": {}})
    code, _, err = run_cli("tools", empty)
    assert code == 2 and "no servers" in err
    code, _, err = run_cli("tools", empty, "--var", "novalue")
    assert code == 2


def test_console_entry_points(config_file: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trio_mcp",
            "call",
            config_file,
            "local",
            "add",
            "--args",
            '{"a": 2, "b": 3}',
            "--env",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "token": "from-env"},
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "5\n"), done.stderr
    script = Path(sys.executable).with_name("trio-mcp")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "tools" in done.stdout


# -- the command, as a newcomer meets it ------------------------------------------------


def test_cli_version_and_help_for_everything() -> None:
    code, out, _ = run_cli("--version")
    assert (code, out) == (0, f"trio-mcp {trio_mcp.__version__}\n")
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
        code, out, _ = run_cli(name, "--help")
        assert code == 0 and "exit codes" not in out and "--connect-timeout" in out
    code, out, _ = run_cli("--help")
    assert code == 0 and "exit codes:" in out and "130" in out


def test_cli_unknown_server_is_a_usage_error_with_a_suggestion(config_file: str) -> None:
    code, out, err = run_cli("call", config_file, "remot", "echo")
    assert (code, out) == (2, "")
    assert "no server named 'remot'" in err and "did you mean 'remote'?" in err
    code, _, err = run_cli("tools", config_file, "--server", "lokal")
    assert code == 2 and "did you mean 'local'?" in err
    code, _, err = run_cli("tools", config_file, "--server", "zzz")
    assert code == 2 and "did you mean" not in err and "servers: legacy, local, remote" in err


def test_cli_tools_table_fits_the_terminal(config_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    code, out, err = run_cli("tools", config_file, "--var", "token=a", "--server", "local")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert any(line.endswith("…") for line in lines)
    code, wide, _ = run_cli("tools", config_file, "--var", "token=a", "--server", "local", "--wide")
    assert code == 0 and max(len(line) for line in wide.splitlines()) > 60 and "…" not in wide
    code, document, _ = run_cli("tools", config_file, "--var", "token=a", "--server", "local", "--json")
    descriptions = {
        tool["name"]: tool.get("description", "") for tool in json.loads(document)["local"]["tools"]
    }
    assert any(len(text) > 60 for text in descriptions.values())


def test_cli_call_arguments_as_pairs_and_files(config_file: str, tmp_path: Path) -> None:
    variables = ("--var", "token=a")
    assert run_cli("call", config_file, "local", "add", "--args", "a=2", "b=3", *variables)[:2] == (0, "5\n")
    # The schema wants a string: "123" stays one.
    assert run_cli("call", config_file, "local", "echo", "--args", "text=123", *variables)[:2] == (0, "123\n")
    arguments = tmp_path / "args.json"
    arguments.write_text('{"a": 40, "b": 1}')
    code, out, err = run_cli(
        "call", config_file, "local", "add", "--args", f"@{arguments}", "b=2", *variables
    )
    assert (code, out) == (0, "42\n"), err
    for bad, words in [("novalue", "KEY=VALUE"), ("@/nonexistent.json", "cannot read"), ("[1]", "KEY=VALUE")]:
        code, _, err = run_cli("call", config_file, "local", "add", "--args", bad, *variables)
        assert code == 2 and words in err, err
    code, _, err = run_cli("call", config_file, "local", "ad", "--args", "a=1", *variables)
    assert code == 2 and "did you mean 'add'?" in err


def test_cli_call_shows_progress_and_log_messages_on_stderr(config_file: str) -> None:
    code, out, err = run_cli(
        "call", config_file, "local", "progress_steps", "--args", "steps=2", "pause=0", "--var", "token=a"
    )
    assert (code, out) == (0, "2 steps\n")
    assert "trio-mcp: progress 1/2 step 1\ntrio-mcp: progress 2/2 step 2\n" in err
    code, out, err = run_cli(
        "call",
        config_file,
        "local",
        "log_lines",
        "--args",
        '{"levels": ["info", "warning"]}',
        "--var",
        "token=a",
    )
    assert (code, out) == (0, "logged\n")
    assert "[local test-logger] info: info line" in err and "[local test-logger] warning: warning line" in err


def test_cli_shows_stderr_of_failed_servers_only(tmp_path: Path) -> None:
    crash = "import sys; sys.stderr.write('starting\\nfatal: FSROOT is not set\\n'); sys.exit(1)"
    path = write_config(
        tmp_path,
        {
            "mcpServers": {
                "chatty": {
                    "command": sys.executable,
                    "args": [SERVER],
                    "env": {"TEST_SERVER_BANNER": BANNER},
                },
                "broken": {"command": sys.executable, "args": ["-c", crash]},
            }
        },
    )
    code, out, err = run_cli("check", path)
    assert code == 3
    assert "FAILED" in out and "ok" in out and "banner" not in out + err
    assert "trio-mcp: server 'broken' wrote on stderr:\n  starting\n  fatal: FSROOT is not set\n" in err
    code, out, err = run_cli("check", path, "--verbose")
    assert code == 3 and "[chatty] banner line 1" in err and "[broken] fatal: FSROOT is not set" in err
    code, out, err = run_cli("tools", path, "--server", "chatty")
    assert code == 0 and "banner" not in out + err


class _Signalling(io.StringIO):
    """An output stream that creates ``flag`` once ``word`` has been written to it."""

    def __init__(self, word: str, flag: Path) -> None:
        super().__init__()
        self.word, self.flag = word, flag

    def write(self, text: str) -> int:
        if self.word in text:
            self.flag.touch()
        return super().write(text)


def test_cli_check_prints_each_server_as_it_finishes(tmp_path: Path, http_server: HttpServer) -> None:
    flag = tmp_path / "good-was-printed"
    # Fails (exits) only once the good server's line is out: printed at the end, the
    # lines would wait for the connect timeout and come in config order.
    waiter = f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)"
    path = write_config(
        tmp_path,
        {
            "mcpServers": {
                "waiter": {"command": sys.executable, "args": ["-c", waiter]},
                "good": {"url": http_server.http_url},
            }
        },
    )
    out, err = _Signalling("good ", flag), io.StringIO()
    code = main(["check", path, "--connect-timeout", "60"], out=out, err=err)
    lines = out.getvalue().splitlines()
    assert code == 3 and [line.split()[0] for line in lines] == ["good", "waiter"], err.getvalue()
    assert "FAILED" in lines[1]


async def test_a_failed_http_connection_names_the_url_redacted() -> None:
    port = await free_port()
    url = f"http://user:pw-secret@127.0.0.1:{port}/mcp?token=q-secret"
    for config in (trio_mcp.StreamableHttpServer(url), trio_mcp.SseServer(url)):
        async with trio_mcp.open_mcp_pool({"down": config}) as pool:
            with pytest.raises(trio_mcp.ServerUnavailableError) as caught:
                await pool.list_tools("down")
        message = str(caught.value)
        assert f"server 'down' is unavailable at 'http://***@127.0.0.1:{port}/mcp?token=***': " in message
        assert "secret" not in message


def test_import_and_help_do_not_load_the_sdk() -> None:
    """The SDK takes seconds to import: `import trio_mcp` and `trio-mcp --help` never wait for it
    (nor load prometheus_client or the OpenTelemetry SDK)."""
    probe = (
        "import sys, io, trio_mcp, trio_mcp._cli\n"
        "assert trio_mcp.ConfigError and trio_mcp.__version__\n"
        "trio_mcp._cli.main(['--help'], out=io.StringIO())\n"
        "trio_mcp._cli.main(['--version'], out=io.StringIO())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'trio', 'httpx2')))\n"
        "assert trio_mcp.StdioServer('x').command == 'x' and 'mcp' in sys.modules\n"
        # The exporters are optional extras: not imported until asked for.
        "assert trio_mcp.Portal and not {'prometheus_client', 'opentelemetry.sdk'} & set(sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
