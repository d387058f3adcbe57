"""Reading a tool result as text, the way an LLM prompt (or RAGFlow) wants it."""

from __future__ import annotations

import json

import mcp.types as types

__all__ = ["result_text"]


def _describe(block: object) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return f"[image: {block.mime_type}, {len(block.data) * 3 // 4} bytes]"
    if isinstance(block, types.AudioContent):
        return f"[audio: {block.mime_type}, {len(block.data) * 3 // 4} bytes]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link: {block.uri}]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        return f"[embedded resource: {resource.uri} ({resource.mime_type or 'binary'})]"
    return f"[{type(block).__name__} content]"


def result_text(result: types.CallToolResult) -> str:
    """The text of a tool result: text blocks joined by newlines, other blocks described.

    Images, audio and binary resources become short bracketed descriptions rather than
    vanishing, so a model can tell something was returned. With no content at all, the
    structured content (if any) is rendered as JSON.
    """
    parts = [_describe(block) for block in result.content]
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)
