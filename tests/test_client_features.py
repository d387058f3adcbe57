"""The rest of the client side: resource templates, completions, resource subscriptions,
server info, structured output checked against its schema, request ``_meta``, JSON Schema
2020-12 (and ``$ref`` s never fetched) and the skills extension (SEP-2640).

Against the TypeScript reference server (``server-everything``, a 2025-11-25 server) and
the SDK-built test server in both protocol eras: ``mode="legacy"`` (the ``initialize``
handshake, ``resources/subscribe``) and ``"auto"`` (2026-07-28: ``subscriptions/listen``).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import mcp.types as types
import pytest
import trio
import trio.testing
from mcp.server import Server

import trio_mcp
from trio_mcp import ResourceUpdate, result_text

from .conftest import HttpServer, server_module, stdio_server
from .test_handlers import MODES, everything

GREETING = "memo://greeting"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def notes(pool: trio_mcp.MCPPool, server: str = "s") -> list[str]:
    result = await pool.tool_call(server, "client_notes")
    assert result.structured_content is not None
    return list(result.structured_content["result"])


async def server_subscribed(pool: trio_mcp.MCPPool) -> list[str]:
    result = await pool.tool_call("s", "subscribed")
    assert result.structured_content is not None
    return list(result.structured_content["result"])


def expected_version(mode: str) -> str:
    return "2025-11-25" if mode == "legacy" else "2026-07-28"


# -- server info, resource templates, completions ---------------------------------------


async def test_server_info_connects_and_reports(mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        assert pool._slot("s").live is None
        info = await pool.server_info("s")  # connects
        assert info.server == "s"
        assert info.protocol_version == expected_version(mode)
        assert info.implementation is not None and info.implementation.name == "trio-mcp-test-server"
        assert info.capabilities.tools is not None
        assert info.capabilities.resources is not None and info.capabilities.resources.subscribe
        assert info.capabilities.completions is not None
        # The SDK's servers declare extensions (SEP-2133) only at 2026-07-28.
        assert ("io.modelcontextprotocol/skills" in info.extensions) == (mode == "auto")
        again = await pool.server_info("s")
        assert again.implementation == info.implementation and pool.statistics()["s"].connects == 1
        with pytest.raises(trio_mcp.UnknownServerError):
            await pool.server_info("nope")


async def test_templates_and_completions(mode: str) -> None:
    template = types.ResourceTemplateReference(type="ref/resource", uri="memo://notes/{name}")
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        templates = await pool.list_resource_templates("s")
        assert [t.uri_template for t in templates] == ["memo://notes/{name}"]
        contents = (await pool.read_resource("s", "memo://notes/plum")).contents[0]
        assert isinstance(contents, types.TextResourceContents) and contents.text == "note plum"
        completion = await pool.complete("s", template, "name", "ap")
        assert completion.values == ["apple", "apricot"]
        narrowed = await pool.complete("s", template, "name", "a", context={"prefix": "apr"})
        assert narrowed.values == ["apricot"]
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="ref must be"):
            await pool.complete("s", "memo://notes/{name}", "name", "a")  # type: ignore[arg-type]
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="completion context"):
            await pool.complete("s", template, "name", "a", context={"prefix": 3})  # type: ignore[dict-item]


async def test_reference_server_templates_completions_info(mode: str) -> None:
    department = types.PromptReference(type="ref/prompt", name="completable-prompt")
    async with trio_mcp.open_mcp_pool({"ts": everything(mode=mode)}) as pool:
        info = await pool.server_info("ts")
        assert info.protocol_version == "2025-11-25"  # a 2025 server: auto falls back
        assert info.implementation is not None and "everything" in info.implementation.name
        assert info.instructions
        uris = [t.uri_template for t in await pool.list_resource_templates("ts")]
        assert "demo://resource/dynamic/text/{resourceId}" in uris
        assert (await pool.complete("ts", department, "department", "Eng")).values == ["Engineering"]
        names = await pool.complete("ts", department, "name", "", context={"department": "Sales"})
        assert names.values == ["David", "Eve", "Frank"]
        result = await pool.tool_call("ts", "get-structured-content", {"location": "Chicago"})
        assert result.structured_content == {
            "temperature": 36,
            "conditions": "Light rain / drizzle",
            "humidity": 82,
        }


# -- resource subscriptions ---------------------------------------------------------------------


async def test_subscription_delivers_updates(mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        async with (
            pool.subscribe_resource("s", GREETING) as greeting,
            pool.subscribe_resource("s", "memo://notes/plum") as plum,
        ):
            # Updates of other resources reach neither; each gets only its own.
            await pool.tool_call("s", "touch", {"uri": "memo://elsewhere"})
            await pool.tool_call("s", "touch", {"uri": GREETING})
            await pool.tool_call("s", "touch", {"uri": "memo://notes/plum"})
            assert await greeting.__anext__() == ResourceUpdate("s", GREETING)
            assert await plum.__anext__() == ResourceUpdate("s", "memo://notes/plum")
            await pool.tool_call("s", "touch", {"uri": "memo://notes/plum"})
            assert await plum.__anext__() == ResourceUpdate("s", "memo://notes/plum")
            if mode == "legacy":
                assert await server_subscribed(pool) == [GREETING, "memo://notes/plum"]
        # Leaving a subscription ends it on the server too.
        if mode == "legacy":
            assert await server_subscribed(pool) == []
        with pytest.raises(StopAsyncIteration):
            await greeting.__anext__()


async def test_legacy_subscriptions_share_one_server_subscription() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode="legacy")}) as pool:
        async with pool.subscribe_resource("s", "memo://notes/") as first:
            async with pool.subscribe_resource("s", "memo://notes/") as second:
                await pool.tool_call("s", "touch", {"uri": "memo://notes/fig"})  # a sub-resource
                assert await first.__anext__() == ResourceUpdate("s", "memo://notes/fig")
                assert await second.__anext__() == ResourceUpdate("s", "memo://notes/fig")
            # The other subscription still wants it: the server is not told to stop.
            assert await server_subscribed(pool) == ["memo://notes/"]
            await pool.tool_call("s", "touch", {"uri": "memo://notes/kiwi"})
            assert await first.__anext__() == ResourceUpdate("s", "memo://notes/kiwi")
        assert await server_subscribed(pool) == []
        assert "resources/unsubscribe memo://notes/" in await notes(pool)


async def test_a_lost_session_ends_the_subscription(mode: str) -> None:
    async with (
        trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool,
        pool.subscribe_resource("s", GREETING) as updates,
    ):
        await pool.tool_call("s", "touch", {"uri": GREETING})
        assert await updates.__anext__() == ResourceUpdate("s", GREETING)
        with pytest.raises(trio_mcp.ServerDisconnectedError):
            await pool.tool_call("s", "crash")
        with pytest.raises(trio_mcp.ServerDisconnectedError, match="subscribe again"):
            await updates.__anext__()
        # A new session does not revive it: updates there would be for nobody.
        await pool.tool_call("s", "touch", {"uri": GREETING})
        with pytest.raises(trio_mcp.ServerDisconnectedError):
            await updates.__anext__()


async def test_pool_close_ends_the_subscription(mode: str) -> None:
    async with (
        trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool,
        pool.subscribe_resource("s", GREETING) as updates,
    ):
        async with trio.open_nursery() as nursery:
            failures: list[BaseException] = []

            async def read() -> None:
                try:
                    await updates.__anext__()
                except trio_mcp.MCPPoolError as error:
                    failures.append(error)

            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            pool.close()
        assert len(failures) == 1 and isinstance(failures[0], trio_mcp.PoolClosedError)


async def test_reference_server_subscription(mode: str) -> None:
    uri = "demo://resource/dynamic/text/1"
    async with (
        trio_mcp.open_mcp_pool({"ts": everything(mode=mode)}) as pool,
        pool.subscribe_resource("ts", uri) as updates,
    ):
        # Starts its simulated updates with one at once, for every subscribed URI.
        await pool.tool_call("ts", "toggle-subscriber-updates")
        try:
            assert await updates.__anext__() == ResourceUpdate("ts", uri)
        finally:
            await pool.tool_call("ts", "toggle-subscriber-updates")


async def test_subscriptions_need_the_capability(mode: str) -> None:
    # A low-level server with tools only: no resources, no skills (MCPServer always has resources).
    async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="noop", input_schema={"type": "object"})])

    async def call_tool(_ctx: Any, _params: Any) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="ok")])

    bare: Server[Any] = Server("bare", on_list_tools=list_tools, on_call_tool=call_tool)

    async with trio_mcp.open_mcp_pool({"bare": trio_mcp.InProcessServer(bare, mode=mode)}) as pool:
        subscription = pool.subscribe_resource("bare", GREETING)
        with pytest.raises(trio_mcp.NotSupportedError, match=r"resources\.subscribe") as info:
            async with subscription:
                pass
        assert isinstance(info.value, trio_mcp.RequestFailedError) and info.value.code == -32601
        with pytest.raises(trio_mcp.NotSupportedError, match="skills"):
            await pool.list_skills("bare")
        assert result_text(await pool.tool_call("bare", "noop")) == "ok"  # the session is fine
    with pytest.raises(trio_mcp.InvalidArgumentsError):
        pool.subscribe_resource("bare", b"memo://x")  # type: ignore[arg-type]


def test_portal_subscription_and_features() -> None:
    template = types.ResourceTemplateReference(type="ref/resource", uri="memo://notes/{name}")
    with trio_mcp.start_portal({"s": stdio_server(), "old": stdio_server(mode="legacy")}) as portal:
        skill = portal.read_skill("s", "hello")
        assert portal.read_skill_file("s", skill, "references/NOTES.md") == b"Notes for hello.\n"
        assert [entry.name for entry in portal.list_skills("s")] == ["hello", "tampered"]
        for server in ("s", "old"):
            with portal.subscribe_resource(server, GREETING) as updates:
                portal.tool_call(server, "touch", {"uri": GREETING})
                assert next(updates) == ResourceUpdate(server, GREETING)
            assert list(updates) == []  # over once left
            assert portal.server_info(server).protocol_version == expected_version(
                "legacy" if server == "old" else "auto"
            )
            assert [t.name for t in portal.list_resource_templates(server)] == ["note"]
            assert portal.complete(server, template, "name", "ch").values == ["cherry"]
            meta = portal.tool_call(server, "request_meta", meta={"trace": "t-1"})
            assert meta.structured_content == {"trace": "t-1"}


# -- structured content, request metadata, schemas ----------------------------------------------


async def test_structured_content_is_checked_against_the_output_schema(mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        good = await pool.tool_call("s", "weather")
        assert good.structured_content == {"temperature": 21.5, "conditions": "sunny"}
        with pytest.raises(trio_mcp.InvalidResultError, match="output schema") as info:
            await pool.tool_call("s", "weather", {"kind": "wrong"})
        error = info.value
        assert isinstance(error, trio_mcp.RequestFailedError) and error.server == "s"
        assert "'weather'" in str(error) and "temperature" in str(error)
        assert "secret-ish" not in str(error)  # the value is not repeated
        with pytest.raises(trio_mcp.InvalidResultError, match="no structured content"):
            await pool.tool_call("s", "weather", {"kind": "missing"})
        assert result_text(await pool.tool_call("s", "echo", {"text": "alive"})) == "alive"


async def test_request_meta(mode: str) -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        meta = {"trace": {"id": "abc", "sampled": True}}
        result = await pool.tool_call("s", "request_meta", meta=meta)
        assert result.structured_content == meta
        with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"meta\['trace'\]\['tags'\].*set"):
            await pool.tool_call("s", "request_meta", meta={"trace": {"tags": {"a"}}})
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="meta must be a mapping"):
            await pool.tool_call("s", "request_meta", meta=["trace"])  # type: ignore[arg-type]


async def test_json_schema_2020_12_is_preserved_and_applied(mode: str) -> None:
    schema = server_module().SCHEMA_2020_12
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode=mode)}) as pool:
        tools = {tool.name: tool for tool in await pool.list_tools("s")}
        assert tools["pair"].input_schema == schema
        assert result_text(await pool.tool_call("s", "pair", {"pair": ["a", 1]})) == "a=1"
        for arguments in (
            {"pair": ["a", 1, 2]},  # items: false after prefixItems
            {"pair": ["", 1]},  # minLength, through $ref to $defs
            {"pair": ["a", 1], "extra": True},  # unevaluatedProperties
        ):
            with pytest.raises(trio_mcp.InvalidArgumentsError, match="input schema"):
                await pool.tool_call("s", "pair", arguments)


@pytest.fixture
def schema_host() -> Iterator[tuple[str, list[str]]]:
    """An http:// URL on 127.0.0.1 and the list of connections made to it (each is
    closed at once, so a synchronous fetch fails fast instead of hanging)."""
    connections: list[str] = []
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.05)

        def accept() -> None:
            while not stop.is_set():
                try:
                    connection, peer = listener.accept()
                except TimeoutError:
                    continue
                connections.append(str(peer))
                connection.close()

        thread = threading.Thread(target=accept, name="schema-host")
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}/schema.json", connections
        finally:
            stop.set()
            thread.join()


async def test_network_refs_are_never_fetched(mode: str, schema_host: tuple[str, list[str]]) -> None:
    url, connections = schema_host
    async with trio_mcp.open_mcp_pool(
        {"s": stdio_server(mode=mode, env={"TEST_SERVER_REF_URL": url})}
    ) as pool:
        tools = {tool.name: tool for tool in await pool.list_tools("s")}
        assert tools["remote_ref"].input_schema["properties"]["value"] == {"$ref": url}
        # Unresolvable without a fetch: the server gets the call and judges it.
        result = await pool.tool_call("s", "remote_ref", {"value": "x", "count": 2})
        assert result_text(result) == "ran with 'x'"
    assert connections == []


async def test_a_ref_cycle_in_an_input_schema_leaves_the_call_to_the_server() -> None:
    # "value" refers to itself: jsonschema recurses until Python's stack runs out.
    env = {"TEST_SERVER_REF_URL": "#/properties/value"}
    async with trio_mcp.open_mcp_pool({"s": stdio_server(env=env)}) as pool:
        for _ in range(2):
            result = await pool.tool_call("s", "remote_ref", {"value": "x", "count": 2})
            assert result_text(result) == "ran with 'x'"


async def test_a_rule_jsonschema_cannot_apply_leaves_the_call_to_the_server() -> None:
    # jsonschema's multipleOf divides a huge int by a float: OverflowError.
    schema = {"type": "object", "properties": {"s": {"type": "string"}, "n": {"multipleOf": 0.5}}}

    async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="t", input_schema=schema)])

    async def call_tool(_ctx: Any, _params: Any) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="ran")])

    odd: Server[Any] = Server("odd", on_list_tools=list_tools, on_call_tool=call_tool)
    async with trio_mcp.open_mcp_pool({"odd": trio_mcp.InProcessServer(odd)}) as pool:
        assert result_text(await pool.tool_call("odd", "t", {"n": 10**400})) == "ran"
        # A problem found before the rule that fails is still reported.
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="s: must satisfy type='string'"):
            await pool.tool_call("odd", "t", {"s": 5, "n": 10**400})


async def test_results_without_result_type_are_complete(http_server: HttpServer) -> None:
    config = trio_mcp.StreamableHttpServer(http_server.url("/bare-2026"))
    async with trio_mcp.open_mcp_pool({"bare": config}) as pool:
        assert (await pool.server_info("bare")).protocol_version == "2026-07-28"
        assert result_text(await pool.tool_call("bare", "bare")) == "no resultType"


# -- skills (SEP-2640) --------------------------------------------------------------------------
# The SDK-built server declares the skills extension only on 2026-07-28 sessions; the
# conformance suite's sep-2640-* mocks (``make conformance``) declare it on 2025-11-25 ones.


async def test_skills_need_the_extension() -> None:
    async with trio_mcp.open_mcp_pool({"s": stdio_server(mode="legacy")}) as pool:
        with pytest.raises(trio_mcp.NotSupportedError, match=r"io\.modelcontextprotocol/skills"):
            await pool.list_skills("s")
        with pytest.raises(trio_mcp.NotSupportedError):
            await pool.read_skill("s", "hello")
        assert not [note for note in await notes(pool) if "skills/list" in note or "resources/read" in note]


async def test_skills_are_listed_and_read_on_demand() -> None:
    files = server_module().SKILL_FILES
    async with trio_mcp.open_mcp_pool({"s": stdio_server()}) as pool:
        skills = await pool.list_skills("s")
        assert [skill.name for skill in skills] == ["hello", "tampered"]  # the malformed one left out
        hello = skills[0]
        assert hello.uri == "skill://demo/hello/SKILL.md" and hello.description == "Say hello"
        assert hello.files is not None and {item.uri for item in hello.files} == {
            "skill://demo/hello/SKILL.md",
            "skill://demo/hello/references/NOTES.md",
        }
        assert "resources/read" not in " ".join(await notes(pool))  # listing read no file
        skill = await pool.read_skill("s", "hello")
        assert skill.text == files["skill://demo/hello/SKILL.md"]
        assert skill.body == "\nSay hello.\n"
        assert skill.frontmatter == {"name": "hello", "description": "Say hello", "version": "2024-01-01"}
        assert (await pool.read_skill("s", "skill://demo/hello/SKILL.md")).text == skill.text
        assert (await pool.read_skill("s", hello)).text == skill.text
        read = [note for note in await notes(pool) if note.startswith("resources/read")]
        assert read == ["resources/read skill://demo/hello/SKILL.md"] * 3  # SKILL.md only
        assert await pool.read_skill_file("s", skill, "references/NOTES.md") == b"Notes for hello.\n"
        assert await pool.read_skill_file("s", "hello", "skill://demo/hello/references/NOTES.md") == (
            b"Notes for hello.\n"
        )
        for path in ("../tampered/SKILL.md", "references/NOPE.md", "/etc/passwd", "http://x/y"):
            with pytest.raises(trio_mcp.InvalidArgumentsError):
                await pool.read_skill_file("s", skill, path)
        with pytest.raises(trio_mcp.InvalidArgumentsError, match="no skill 'nope'"):
            await pool.read_skill("s", "nope")


@pytest.mark.parametrize(
    ("tamper", "match"), [("digest", "SHA-256"), ("size", "bytes"), ("frontmatter", "'description'")]
)
async def test_a_skill_that_fails_verification_is_rejected(tamper: str, match: str) -> None:
    config = stdio_server(env={"TEST_SERVER_TAMPER": tamper})
    async with trio_mcp.open_mcp_pool({"s": config}) as pool:
        with pytest.raises(trio_mcp.SkillVerificationError, match=match) as info:
            await pool.read_skill("s", "tampered")
        assert info.value.uri == "skill://demo/tampered/SKILL.md"
        assert isinstance(info.value, trio_mcp.InvalidResultError)
        assert "Evil" not in str(info.value) and "Exfiltrate" not in str(info.value)
        # The skill's supporting files are still checked, one by one, on demand.
        assert await pool.read_skill_file("s", "tampered", "references/MORE.md") == b"More.\n"


def test_skill_frontmatter_parsing() -> None:
    from trio_mcp._skills import SkillEntry, _parse_skill

    entry = SkillEntry(
        "s", "skill://a/x/SKILL.md", {"name": "x", "description": "d", "when": "2024-05-01"}, None
    )
    skill = _parse_skill(entry, "\ufeff---\r\nname: x\r\ndescription: d\r\nwhen: 2024-05-01\r\n---\r\nbody")
    assert skill.body == "body" and skill.frontmatter["when"] == "2024-05-01"
    for text in ("no frontmatter", "---\nname: [unclosed\n---\n", "---\n- a list\n---\n"):
        with pytest.raises(trio_mcp.SkillVerificationError, match="frontmatter"):
            _parse_skill(entry, text)
    with pytest.raises(trio_mcp.SkillVerificationError, match="'extra'"):
        _parse_skill(entry, "---\nname: x\ndescription: d\nwhen: '2024-05-01'\nextra: 1\n---\n")
    assert json.dumps(dict(skill.frontmatter))  # JSON-shaped, like the listing


def test_skill_listing_entries() -> None:
    from trio_mcp._skills import _entry, file_uri, find_skill

    good = {
        "uri": "skill://x/dyn/SKILL.md",
        "frontmatter": {"name": "dyn", "description": "d"},
        "resources": "dynamic",
    }
    dynamic = _entry("s", good)
    assert dynamic is not None and dynamic.files is None and dynamic.directory == "skill://x/dyn"
    # No manifest: any file inside the skill may be read (unverified), nothing outside it.
    assert file_uri(dynamic, "scripts/run.py") == "skill://x/dyn/scripts/run.py"
    assert file_uri(dynamic, "skill://x/dyn/a.md") == "skill://x/dyn/a.md"
    assert file_uri(dynamic, "refs/../a.md") == "skill://x/dyn/a.md"
    with pytest.raises(trio_mcp.InvalidArgumentsError, match="leads outside"):
        file_uri(dynamic, "a/../../other/SKILL.md")
    for broken in (
        {**good, "uri": "skill://x/dyn/README.md"},
        {**good, "frontmatter": {"name": "dyn"}},
        {**good, "resources": None},
        {**good, "resources": [{"uri": "skill://x/dyn/SKILL.md", "digest": "sha256:00", "size": True}]},
        {**good, "resources": [{"uri": "skill://x/dyn/SKILL.md", "digest": "sha256:00", "size": -1}]},
        "not an object",
    ):
        assert _entry("s", broken) is None
    twin = _entry("s", {**good, "uri": "skill://y/dyn/SKILL.md"})
    assert twin is not None
    with pytest.raises(trio_mcp.InvalidArgumentsError, match=r"2 skills named 'dyn'.*by its URI"):
        find_skill("s", [dynamic, twin], "dyn")
    assert find_skill("s", [dynamic, twin], "skill://y/dyn/SKILL.md") is twin


async def test_unread_updates_are_coalesced() -> None:
    from trio_mcp._subscriptions import _MAX_PENDING, _Feed

    feed = _Feed("memo://dir/", modern=False)
    for _ in range(3):
        feed.push("memo://dir/a")
    feed.push("memo://dir/b")
    assert [await feed.next(), await feed.next()] == ["memo://dir/a", "memo://dir/b"]
    # Too many distinct sub-resources unread: one update of the subscribed URI stands for them.
    for index in range(_MAX_PENDING + 1):
        feed.push(f"memo://dir/{index}")
    assert await feed.next() == "memo://dir/"
    feed.finish("lost")
    feed.push("memo://dir/late")  # after the end: dropped
    assert await feed.next() is None


def test_only_the_sdks_output_check_becomes_invalid_result() -> None:
    from trio_mcp._session import _output_error

    tool = types.Tool(name="t", input_schema={"type": "object"}, output_schema={"type": "object"})

    def session_gone() -> None:
        raise RuntimeError("Client must be used within an async context manager")

    # A RuntimeError from elsewhere (a client closed under the call) stays what it is,
    # for the pool's translation to call it a lost session.
    with pytest.raises(RuntimeError, match="async context manager") as info:
        session_gone()
    assert _output_error(info.value, "s", "t", tool, trio.Event()) is None
