"""Secrets (URL credentials, query tokens, header values, session ids) never reach a log
record, an error's text, or anything chained to an error."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import httpx2
import prometheus_client
import pytest
import trio
from mcp.shared.exceptions import MCPError

import trio_mcp
from trio_mcp import result_text
from trio_mcp._config import redact_url
from trio_mcp._redact import redact_exception, redact_text
from trio_mcp._translate import translate_call_error, translate_connect_error

from .conftest import HttpServer, free_port, stdio_server
from .test_telemetry import Recorder

PASSWORD, TOKEN, HEADER, USER = "pw-S3CRET", "qtok-S3CRET", "hdr-S3CRET", "usr-S3CRET"
SECRETS = (PASSWORD, TOKEN, HEADER, USER)
SESSION_ID = re.compile(r"[0-9a-f]{32}")


# Malformed URLs must not leak either: a raw "/", "?" or "#" in the user-info, a
# missing "/" after the scheme, bare query tokens, path parameters, fragments.
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://a:b@h/p?x=1&y", "http://***@h/p?x=***&***"),
        ("https://USER:PASS@host:8443/mcp?api_key=KEY", "https://***@host:8443/mcp?api_key=***"),
        ("http://USER:PA/SS@host/mcp", "http://***"),
        ("http://USER:PA?SS@host/mcp", "http://***"),
        ("http://USER:PA#SS@host/mcp", "http://***"),
        ("http://US/ER:PASS@host/mcp", "http://***"),
        ("http://USER:12/SS@host/mcp", "http://***"),
        ("http://USER:12?SS@host/mcp", "http://***"),
        ("http:/USER:PASS@host/mcp", "http:/***@host/mcp"),
        ("http:USER:PASS@host/mcp", "http:***@host/mcp"),
        ("http//USER:PASS@host/mcp", "***"),
        ("USER:PASS@host/mcp", "***@host/mcp"),
        ("http://USER:PASS@@host/mcp", "http://***@host/mcp"),
        ("http://USER:PASS@host:PORTX/mcp", "http://***@***/mcp"),
        ("http://USER:PASS/mcp", "http://***/mcp"),
        ("http://host/mcp?TOKEN", "http://host/mcp?***"),
        ("http://host/mcp?a=1&TOKEN", "http://host/mcp?a=***&***"),
        ("http://host/mcp?a=1&&TOKEN", "http://host/mcp?a=***&***&***"),
        ("http://host/mcp?TOKEN=", "http://host/mcp?***"),
        ("http://host/mcp?TOKEN==", "http://host/mcp?***"),
        ("http://host/mcp?TOKEN%3D=v", "http://host/mcp?***"),
        ("http://host/mcp;jsessionid=TOKEN", "http://host/mcp;***"),
        ("http://host/mcp;TOKEN?x=1", "http://host/mcp;***?x=***"),
        ("http://host/mcp#TOKEN", "http://host/mcp"),
        ("https://host/mcp?mail=USER@PASS", "https://***"),
        (
            "https://server.example/@scope/name/mcp?key=TOKEN",
            "https://server.example/@scope/name/mcp?key=***",
        ),
        ("http://[::1]:8080/mcp", "http://[::1]:8080/mcp"),
        ("http://[::1/mcp", "http://***/mcp"),
        ("localhost:8000/mcp", "localhost:8000/mcp"),
    ],
)
def test_redact_url_shows_no_user_info_query_value_or_param(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    for secret in ("USER", "PASS", "PA", "SS", "TOKEN", "KEY", "PORTX"):
        assert secret not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://USER:PA/SS@host/mcp",
        "http://USER:PA?SS@host/mcp",
        "http://USER:PA#SS@host/mcp",
        "http:/USER:PASS@host/mcp",
        "http:USER:PASS@host/mcp",
        "ftp://USER:PASS@host/mcp?TOKEN",
        "http://USER:PASS@host:PORTX/mcp",
        "http://[::1/mcp?TOKEN",
    ],
)
@pytest.mark.parametrize("config", [trio_mcp.StreamableHttpServer, trio_mcp.SseServer])
def test_config_errors_never_echo_url_secrets(url: str, config: type[trio_mcp.SseServer]) -> None:
    with pytest.raises(trio_mcp.ConfigError) as info:
        config(url)
    for text in _texts(info.value):
        for secret in ("USER", "PASS", "PA", "SS", "TOKEN", "PORTX"):
            assert secret not in text


@pytest.mark.parametrize(
    "url",
    [
        "http://host/mcp?TOKEN",
        "http://host/mcp?a=1&TOKEN",
        "http://host/mcp;TOKEN",
        "http://host/mcp#TOKEN",
        "http://host/mcp?TOKEN=",
        "http://USER:12/PASS@host/mcp",
    ],
)
def test_reprs_never_echo_url_secrets(url: str) -> None:
    config = trio_mcp.StreamableHttpServer(url)
    for text in (repr(config), str(config)):
        for secret in ("USER", "PASS", "TOKEN"):
            assert secret not in text


def _texts(exc: BaseException | None, seen: set[int] | None = None) -> Iterator[str]:
    """str, repr and traceback text of ``exc`` and of everything chained to it."""
    seen = set() if seen is None else seen
    if exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    yield str(exc)
    yield repr(exc)
    yield "".join(traceback.format_exception(exc))
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            yield from _texts(member, seen)
    yield from _texts(exc.__cause__, seen)
    yield from _texts(exc.__context__, seen)


def _assert_clean(texts: Iterator[str] | list[str], what: str) -> None:
    for text in texts:
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{what} leaks {leaked}: {text[:500]}"


def _status_error(status: int) -> httpx2.HTTPStatusError:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:9/sse?api_key={TOKEN}"
    response = httpx2.Response(status, request=httpx2.Request("GET", url))
    try:
        response.raise_for_status()
    except httpx2.HTTPStatusError as error:
        return error
    raise AssertionError("unreachable")


def test_translation_redacts_every_chained_exception() -> None:
    status = _status_error(401)
    assert PASSWORD in str(status)  # httpx2 really puts the URL in its message
    context = OSError(5, f"failed on http://{USER}:{PASSWORD}@h/", f"http://h/?k={TOKEN}")
    status.__context__ = context
    noted = RuntimeError("x")
    noted.add_note(f"while posting to http://h/mcp?api_key={TOKEN}")
    rpc = MCPError(-32603, f"upstream http://{USER}:{PASSWORD}@h/ failed")
    for translate in (
        lambda exc: translate_connect_error(exc, "s"),
        lambda exc: translate_call_error(exc, server="s", what="tools/call", closing=False),
    ):
        group = ExceptionGroup("g", [status, ExceptionGroup("h", [noted, rpc])])
        error = translate(group)
        try:
            raise error from error.__cause__
        except trio_mcp.MCPPoolError as raised:
            raised.__context__ = group  # what a raise inside the except block does
            _assert_clean(_texts(raised), "translated error")
    assert "HTTP 401" in str(translate_connect_error(_status_error(401), "s"))
    assert redact_text("(b'mcp-session-id', b'abc123')") == "(b'mcp-session-id', b'***')"
    # A cycle in the chain ends the walk.
    a, b = ValueError(f"http://h/?k={TOKEN}"), ValueError(f"http://{USER}@h/")
    a.__context__, b.__context__ = b, a
    redact_exception(a)
    assert TOKEN not in str(a) and USER not in str(b)


async def _answer_with_status(status: int, stream: trio.SocketStream) -> None:
    """Read one HTTP request (headers and body), answer ``status``, close."""
    async with stream:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some()
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = await stream.receive_some()
            if not chunk:
                return
            body += chunk
        await stream.send_all(
            f"HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )


async def serve_status(status: int, *, task_status: trio.TaskStatus[int]) -> None:
    """A tiny real HTTP server on 127.0.0.1 that answers every request with ``status``."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(lambda stream: _answer_with_status(status, stream), listeners)


async def test_no_secret_in_any_log_record_error_chained_cause_span_or_metric(
    caplog: pytest.LogCaptureFixture, http_server: HttpServer
) -> None:
    """Good and failing servers over SSE and Streamable HTTP (both modes), logged at DEBUG,
    traced (OpenTelemetry spans) and scraped (Prometheus).

    Failures: HTTP 401 and 500 (a small real server), 404 (a wrong path on the test
    server), connection refused, and a session lost when its server is killed.
    """
    recorder = Recorder()
    doomed = await trio.to_thread.run_sync(HttpServer)
    refused = await free_port()
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records
    async with trio.open_nursery() as nursery:
        unauthorized = await nursery.start(serve_status, 401)
        broken = await nursery.start(serve_status, 500)

        def url(port: int, path: str) -> str:
            return f"http://{USER}:{PASSWORD}@127.0.0.1:{port}{path}?api_key={TOKEN}"

        servers: dict[str, trio_mcp.ServerConfig] = {}
        for kind, path, make, modes in (
            ("sse", "/sse", trio_mcp.SseServer, ("auto",)),
            ("http", "/mcp", trio_mcp.StreamableHttpServer, ("auto", "legacy")),
        ):
            targets = {
                "ok": url(http_server.port, path),
                "401": url(unauthorized, path),
                "500": url(broken, path),
                "404": url(http_server.port, "/no-such-path"),
                "refused": url(refused, path),
                "killed": url(doomed.port, path),
            }
            for mode in modes:
                for label, target in targets.items():
                    servers[f"{kind}-{mode}-{label}"] = make(
                        target,
                        headers={"X-Test-Key": "Bearer ${key}"},
                        mode=mode,  # type: ignore[arg-type]
                        call_timeout=10,
                    )
        errors: list[BaseException] = []
        registry = prometheus_client.CollectorRegistry()
        async with trio_mcp.open_mcp_pool(
            servers, variables={"key": HEADER}, tracer_provider=recorder.provider
        ) as pool:
            collector = trio_mcp.PrometheusCollector(pool, registry=registry)
            for name in servers:
                if name.endswith(("-ok", "-killed")):
                    seen = trio_mcp.result_text(await pool.tool_call(name, "whoami"))
                    assert HEADER in seen  # the secret header and URL reached the server
            doomed.stop()
            for name in servers:
                if name.endswith("-ok"):
                    continue
                with pytest.raises(trio_mcp.MCPPoolError) as info:
                    await pool.tool_call(name, "echo", {"text": "x"})
                errors.append(info.value)
                if "sse" in name and name.endswith(("401", "500", "404")):
                    assert f"HTTP {name.rpartition('-')[2]}" in str(info.value)
            scraped = prometheus_client.generate_latest(registry).decode()
            collector.unregister()
        nursery.cancel_scope.cancel()

    assert len(errors) == 15
    for error in errors:
        _assert_clean(_texts(error), f"error {error!r}")
    records = caplog.records
    assert any(record.name.startswith("httpx2") for record in records)  # the capture saw them
    assert any("session ID" in record.getMessage() for record in records)  # legacy Streamable HTTP
    assert any(record.exc_info for record in records)  # the SDK logged tracebacks too
    for record in records:
        texts = [record.getMessage(), repr(record.msg), repr(record.args)]
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
        _assert_clean(texts, f"log record {record.name}:{record.levelname}")
        # Session ids (the server's are uuid4 hex) are bearer capabilities too.
        assert not any(SESSION_ID.search(text) for text in texts), texts
    spans = recorder.spans()
    recorder.provider.shutdown()
    assert len(spans) == 6 + 15  # whoami on the 6 good servers (3 "ok", 3 "killed"), then 15 failures
    assert {(span.attributes or {}).get("server.address") for span in spans} == {"127.0.0.1"}
    for span in spans:
        texts = [
            span.name,
            repr(dict(span.attributes or {})),
            str(span.status.description),
            repr(span.events),
        ]
        _assert_clean(texts, f"span {span.name}")
        assert not any(SESSION_ID.search(text) for text in texts), texts
    assert 'server="http-auto-ok"' in scraped
    _assert_clean([scraped], "the Prometheus scrape")
    assert not SESSION_ID.search(scraped)


def test_a_fresh_process_logs_no_secret_from_its_first_request(http_server: HttpServer) -> None:
    """httpcore2 creates its loggers at its first request: they are redacted from the start."""
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{http_server.port}/mcp?api_key={TOKEN}"
    script = f"""if True:
        import logging, sys, trio, trio_mcp
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
        server = trio_mcp.StreamableHttpServer({url!r}, mode="legacy", headers={{"X-Key": {HEADER!r}}})
        async def main():
            async with trio_mcp.open_mcp_pool({{"h": server}}) as pool:
                await pool.tool_call("h", "echo", {{"text": "x"}})
        trio.run(main)
    """
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "b'mcp-session-id', b'***'" in done.stdout  # httpcore2 traced the response headers
    _assert_clean([done.stdout, done.stderr], "a fresh process's log")
    assert not SESSION_ID.search(done.stdout)


def test_loggers_created_later_get_the_redacting_filter_too() -> None:
    """New SDK loggers appear as modules are imported; a parent that was only a
    placeholder becomes a logger in place. Both are covered at the next install."""
    from trio_mcp._redact import _FILTER, install_log_redaction

    logging.getLogger("mcp.trio_mcp_test.child")
    install_log_redaction()
    child = logging.getLogger("mcp.trio_mcp_test.child")
    assert _FILTER in child.filters
    parent = logging.getLogger("mcp.trio_mcp_test")  # was a placeholder until now
    install_log_redaction()
    assert _FILTER in parent.filters
    later = logging.getLogger("httpx2.trio_mcp_test_later")
    install_log_redaction()
    assert _FILTER in later.filters


def test_a_logger_created_while_the_filter_is_being_installed_is_covered_next_time() -> None:
    """Another thread may create a logger while install_log_redaction scans: it must not
    count as seen (simulated here: the scan itself creates one)."""
    from trio_mcp._redact import _FILTER, install_log_redaction

    manager = logging.Logger.manager
    created = "httpx2.trio_mcp_test_created_during_scan"

    class Growing(dict[str, Any]):
        grown = False

        def items(self) -> Any:
            snapshot = list(super().items())
            if not self.grown:
                self.grown = True
                logging.getLogger(created)  # as if from another thread, just after the snapshot
            return snapshot

    original = manager.loggerDict
    manager.loggerDict = Growing(original)
    try:
        logging.getLogger("httpx2.trio_mcp_test_before_scan")  # so that the next call scans
        install_log_redaction()
        install_log_redaction()
        assert _FILTER in logging.getLogger(created).filters
    finally:
        restored = dict(manager.loggerDict)
        manager.loggerDict = original
        original.update(restored)


async def test_a_stdio_server_sending_back_its_environment_shows_none_of_it() -> None:
    secret = "sk-env-secret-4711"
    config = stdio_server(env={"SERVICE_TOKEN": secret})
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        with pytest.raises(trio_mcp.RequestFailedError) as caught:
            await pool.tool_call("s", "jsonrpc_error", {"code": -32050, "message": f"bad token {secret}"})
        chain: list[BaseException] = []
        error: BaseException | None = caught.value
        while error is not None and len(chain) < 10:
            chain.append(error)
            error = error.__cause__ or error.__context__
        shown = " ".join(f"{e} {e!r}" for e in chain)
        assert "bad token ***" in str(caught.value)
        assert secret not in shown
        # A result is the caller's own data: never rewritten.
        assert result_text(await pool.tool_call("s", "getenv", {"name": "SERVICE_TOKEN"})) == secret
