"""Where a stdio server's stderr goes: inherited, discarded, a file, or Python logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import trio_mcp

from .conftest import stdio_server

BANNER = "banner line 1\nbanner line 2\n"


async def _talk(config: trio_mcp.StdioServer) -> None:
    async with trio_mcp.open_mcp_pool({"chatty": config}) as pool:
        assert trio_mcp.result_text(
            await pool.tool_call("chatty", "to_stderr", {"text": "during\nno newline"})
        ) == ("written")


async def test_log_one_record_per_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trio_mcp.server")
    await _talk(stdio_server(env={"TEST_SERVER_BANNER": BANNER}, stderr="log"))
    records = [r for r in caplog.records if r.name == "trio_mcp.server.chatty"]
    assert [r.getMessage() for r in records] == ["banner line 1", "banner line 2", "during", "no newline"]
    assert {r.levelno for r in records} == {logging.INFO}


async def test_inherit_and_discard(capfd: pytest.CaptureFixture[str]) -> None:
    await _talk(stdio_server(env={"TEST_SERVER_BANNER": BANNER}))
    assert BANNER in capfd.readouterr().err
    await _talk(stdio_server(env={"TEST_SERVER_BANNER": BANNER}, stderr="discard"))
    assert "banner" not in capfd.readouterr().err


async def test_a_file_path_or_an_open_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "server.log"
    await _talk(stdio_server(env={"TEST_SERVER_BANNER": BANNER}, stderr=path))
    await _talk(stdio_server(env={"TEST_SERVER_BANNER": BANNER}, stderr=str(path)))  # appended
    assert path.read_text() == (BANNER + "during\nno newline") * 2
    with (tmp_path / "other.log").open("w") as file:
        await _talk(stdio_server(stderr=file))
    assert (tmp_path / "other.log").read_text() == "during\nno newline"
    assert "during" not in capfd.readouterr().err


async def test_an_unwritable_stderr_file_names_it(tmp_path: Path) -> None:
    config = stdio_server(stderr=tmp_path / "missing-dir" / "server.log")
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        with pytest.raises(
            trio_mcp.ServerUnavailableError, match=r"server 's': cannot open its stderr file .*server\.log"
        ):
            await pool.list_tools("s")


@pytest.mark.parametrize("value", [3, "", None, b"log"])
def test_bad_stderr_choices(value: Any) -> None:
    with pytest.raises(trio_mcp.ConfigError, match="stderr must be one of"):
        stdio_server(stderr=value)
