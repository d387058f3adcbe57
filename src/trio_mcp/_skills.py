"""The skills extension (SEP-2640, ``io.modelcontextprotocol/skills``), which the SDK lacks.

A server declaring the extension lists its skills with ``skills/list``: per skill, the
URI of its ``SKILL.md``, that file's YAML frontmatter (at least ``name`` and
``description``) and, unless it says ``"dynamic"``, a manifest of every file of the
skill with its size in bytes and SHA-256 digest. The files themselves are ordinary
resources, read with ``resources/read`` — and only when needed: listing reads
nothing, :meth:`MCPPool.read_skill` reads just ``SKILL.md``,
:meth:`MCPPool.read_skill_file` one supporting file.

Whatever is read is checked against the listing before anyone sees it: its byte size,
its digest, and for ``SKILL.md`` its frontmatter, field by field. Any difference (or a
file that cannot be checked) raises :class:`SkillVerificationError` and the content is
dropped: a server cannot show a host one skill and hand its model another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import posixpath
import re
from collections.abc import Awaitable, Mapping
from typing import Any, Literal

import attrs
import mcp.types as types
import pydantic
import yaml  # type: ignore[import-untyped]  # no stubs in the index

from ._errors import InvalidArgumentsError, NotSupportedError, SkillVerificationError
from ._session import LiveSession, walk_pages

__all__ = [
    "SKILLS_EXTENSION",
    "Skill",
    "SkillEntry",
    "SkillFile",
    "find_skill",
    "list_skill_entries",
    "read_verified",
]

logger = logging.getLogger("trio_mcp")

SKILLS_EXTENSION = "io.modelcontextprotocol/skills"
_SKILL_MD = "SKILL.md"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
# The frontmatter block: a first line "---", YAML, a closing "---" line.
_FRONTMATTER = re.compile(r"---\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@attrs.frozen
class SkillFile:
    """One file of a skill's manifest: what its bytes must be."""

    uri: str
    #: ``sha256:`` and 64 lowercase hex digits.
    digest: str
    #: Length in bytes.
    size: int


@attrs.frozen(eq=False)
class SkillEntry:
    """A skill as ``skills/list`` describes it; nothing of it has been read yet."""

    server: str
    #: The URI of the skill's ``SKILL.md``.
    uri: str
    #: The ``SKILL.md`` frontmatter as the server listed it (``name``, ``description``, ...).
    frontmatter: Mapping[str, Any]
    #: Every file of the skill, ``SKILL.md`` included; None when the server lists the
    #: skill's resources as ``"dynamic"`` (no manifest, so nothing to verify against).
    files: tuple[SkillFile, ...] | None

    @property
    def name(self) -> str:
        return str(self.frontmatter["name"])

    @property
    def description(self) -> str:
        return str(self.frontmatter["description"])

    @property
    def directory(self) -> str:
        """The URI of the skill's directory: its files' URIs start with it and a ``/``."""
        return self.uri[: -len(_SKILL_MD) - 1]

    def file(self, uri: str) -> SkillFile | None:
        """The manifest entry for ``uri``, if listed."""
        return next((item for item in self.files or () if item.uri == uri), None)


@attrs.frozen(eq=False)
class Skill:
    """A skill whose ``SKILL.md`` was read and verified against its listing."""

    entry: SkillEntry
    #: The whole ``SKILL.md``.
    text: str
    #: Its YAML frontmatter, parsed (equal to ``entry.frontmatter``).
    frontmatter: Mapping[str, Any]
    #: The instructions after the frontmatter.
    body: str

    @property
    def name(self) -> str:
        return self.entry.name


class _ListSkillsRequest(types.PaginatedRequest[Literal["skills/list"]]):
    method: Literal["skills/list"] = "skills/list"


class _ListSkillsResult(types.PaginatedResult):
    skills: list[Any] = pydantic.Field(default_factory=list)


def _check_declared(live: LiveSession) -> None:
    extensions = live.client.server_capabilities.extensions or {}
    if SKILLS_EXTENSION not in extensions:
        raise NotSupportedError(
            f"server {live.server!r} does not offer skills (it did not declare the "
            f"{SKILLS_EXTENSION} extension); nothing was sent",
            server=live.server,
        )


def _entry(server: str, raw: object) -> SkillEntry | None:
    """A listed skill, or None (and a warning) if the listing's entry is malformed."""
    if not isinstance(raw, Mapping):
        return None
    uri, frontmatter, resources = raw.get("uri"), raw.get("frontmatter"), raw.get("resources")
    if not isinstance(uri, str) or not uri.endswith("/" + _SKILL_MD) or not isinstance(frontmatter, Mapping):
        return None
    if not all(isinstance(frontmatter.get(key), str) and frontmatter[key] for key in ("name", "description")):
        return None
    files: tuple[SkillFile, ...] | None = None
    if resources != "dynamic":
        if not isinstance(resources, list):
            return None
        parsed: list[SkillFile] = []
        for item in resources:
            if not isinstance(item, Mapping):
                return None
            file_uri, digest, size = item.get("uri"), item.get("digest"), item.get("size")
            if (
                not isinstance(file_uri, str)
                or not isinstance(digest, str)
                or not isinstance(size, int)
                or isinstance(size, bool)
                or size < 0
            ):
                return None
            parsed.append(SkillFile(file_uri, digest, size))
        files = tuple(parsed)
    return SkillEntry(server, uri, dict(frontmatter), files)


async def list_skill_entries(live: LiveSession) -> list[SkillEntry]:
    """Every skill ``live``'s server lists (all pages); malformed entries are left out."""
    _check_declared(live)
    entries: list[SkillEntry] = []

    def fetch(cursor: str | None) -> Awaitable[_ListSkillsResult]:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
        return live.client.session.send_request(_ListSkillsRequest(params=params), _ListSkillsResult)

    for page in await walk_pages(live.server, "skills/list", fetch):
        for index, raw in enumerate(page.skills):
            entry = _entry(live.server, raw)
            if entry is None:
                logger.warning("server %r: skills/list entry %d is malformed; left out", live.server, index)
            else:
                entries.append(entry)
    return entries


def find_skill(server: str, entries: list[SkillEntry], skill: str) -> SkillEntry:
    """The entry named ``skill`` (a name, or the URI of its ``SKILL.md``)."""
    matches = [entry for entry in entries if skill in (entry.uri, entry.name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InvalidArgumentsError(f"server {server!r} lists no skill {skill!r}", server=server)
    uris = ", ".join(repr(entry.uri) for entry in matches)
    raise InvalidArgumentsError(
        f"server {server!r} lists {len(matches)} skills named {skill!r} ({uris}): name one by its URI",
        server=server,
    )


def file_uri(entry: SkillEntry, path: str) -> str:
    """The URI of a file of ``entry``'s skill: ``path`` is relative to the skill or a full URI.

    Raises :class:`InvalidArgumentsError` for a path outside the skill, or (when the
    skill has a manifest) for a file the manifest does not list.
    """
    inside = path.startswith(entry.directory + "/")
    relative = path[len(entry.directory) + 1 :] if inside else path
    normal = posixpath.normpath(relative)
    if "://" in relative or relative.startswith("/") or normal in (".", "..") or normal.startswith("../"):
        raise InvalidArgumentsError(
            f"{path!r} is not a file of skill {entry.name!r} (it leads outside {entry.directory!r})",
            server=entry.server,
        )
    uri = entry.directory + "/" + normal
    if entry.files is not None and entry.file(uri) is None:
        raise InvalidArgumentsError(
            f"skill {entry.name!r} on server {entry.server!r} lists no file {uri!r}", server=entry.server
        )
    return uri


def _raw_bytes(server: str, uri: str, result: types.ReadResourceResult) -> bytes:
    """The bytes of the (first) content read for ``uri``, the bytes a digest covers."""
    if not result.contents:
        raise SkillVerificationError(
            f"server {server!r} returned no content for {uri!r}", server=server, uri=uri
        )
    content = result.contents[0]
    if isinstance(content, types.TextResourceContents):
        return content.text.encode("utf-8", errors="surrogatepass")
    try:
        return base64.b64decode(content.blob, validate=True)
    except (binascii.Error, ValueError):
        raise SkillVerificationError(
            f"server {server!r} returned a blob for {uri!r} that is not valid base64", server=server, uri=uri
        ) from None


def _verify(entry: SkillEntry, uri: str, data: bytes) -> None:
    """Check ``data`` against the manifest's size and digest for ``uri`` (skills with one)."""
    if entry.files is None:
        return
    listed = entry.file(uri)
    where = f"{uri!r} (skill {entry.name!r} on server {entry.server!r})"
    if listed is None:
        raise SkillVerificationError(f"{where} is not in the skill's manifest", server=entry.server, uri=uri)
    if len(data) != listed.size:
        raise SkillVerificationError(
            f"{where} is {len(data)} bytes, but the listing says {listed.size}: content rejected",
            server=entry.server,
            uri=uri,
        )
    if not _DIGEST.match(listed.digest):
        raise SkillVerificationError(
            f"{where} has a digest this client cannot check (expected sha256:<64 hex digits>): content rejected",
            server=entry.server,
            uri=uri,
        )
    if "sha256:" + hashlib.sha256(data).hexdigest() != listed.digest:
        raise SkillVerificationError(
            f"{where} does not match its listed SHA-256 digest: content rejected",
            server=entry.server,
            uri=uri,
        )


class _FrontmatterLoader(yaml.SafeLoader):  # type: ignore[misc]  # untyped
    """Safe YAML, with dates left as the strings they are written as (JSON has no dates)."""


_FrontmatterLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_skill(entry: SkillEntry, text: str) -> Skill:
    """``SKILL.md``'s frontmatter, compared field by field with the listing's."""
    match = _FRONTMATTER.match(text.removeprefix("\ufeff"))
    where = f"SKILL.md of skill {entry.name!r} on server {entry.server!r}"
    frontmatter: object = None
    if match is not None:
        try:
            frontmatter = yaml.load(match.group(1), Loader=_FrontmatterLoader)  # a SafeLoader subclass
        except yaml.YAMLError:
            frontmatter = None
    if not isinstance(frontmatter, dict):
        raise SkillVerificationError(
            f"the {where} has no readable YAML frontmatter: content rejected",
            server=entry.server,
            uri=entry.uri,
        )
    listed = entry.frontmatter
    differing = sorted(str(key) for key in {*frontmatter, *listed} if frontmatter.get(key) != listed.get(key))
    if differing:
        raise SkillVerificationError(
            f"the frontmatter of the {where} differs from its listing in {', '.join(map(repr, differing))}: "
            "content rejected",
            server=entry.server,
            uri=entry.uri,
        )
    assert match is not None
    return Skill(entry, text, frontmatter, text.removeprefix("\ufeff")[match.end() :])


async def read_verified(live: LiveSession, entry: SkillEntry, uri: str) -> bytes:
    """Read ``uri`` (a file of ``entry``'s skill) and check it against the listing."""
    result = await live.client.read_resource(uri, cache_mode="bypass")
    data = _raw_bytes(live.server, uri, result)
    _verify(entry, uri, data)
    return data


def skill_from(entry: SkillEntry, data: bytes) -> Skill:
    """The verified bytes of ``entry``'s ``SKILL.md`` as a :class:`Skill` (frontmatter checked)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SkillVerificationError(
            f"SKILL.md of skill {entry.name!r} on server {entry.server!r} is not UTF-8 text",
            server=entry.server,
            uri=entry.uri,
        ) from None
    return _parse_skill(entry, text)
