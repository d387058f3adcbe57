"""The fast path of argument validation (``_plain_object_check``) against jsonschema.

The fast test may only ever say "valid" where jsonschema says so too; where it
cannot tell, jsonschema decides. Each case pairs a schema with arguments.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from jsonschema.validators import validator_for

from trio_mcp._session import _plain_object_check

PLAIN_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"a": {"type": "integer", "description": "x"}, "b": {"type": "number"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "flag": {"type": "boolean", "default": False},
            "maybe": {"type": ["string", "null"]},
            "items": {"type": "array"},
            "nested": {"type": "object"},
            "anything": {"title": "no type at all"},
        },
    },
    {"type": "object"},
    {"type": "object", "properties": {}, "additionalProperties": False},
    {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer"}},
    },
]

NOT_PLAIN: list[dict[str, Any]] = [
    {"type": "object", "properties": {"s": {"type": "string", "minLength": 3}}},
    {"type": "object", "properties": {"s": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"type": "string"}}},
    {"type": "object", "additionalProperties": {"type": "string"}},
    {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
    {"type": "object", "properties": {"e": {"enum": [1, 2]}}},
    {"type": "object", "properties": {"t": {"type": "any"}}},
    {"type": "object", "properties": {"t": True}},
    {"type": "array"},
    {
        "$schema": "http://json-schema.org/draft-03/schema#",
        "type": "object",
        "properties": {"a": {"type": "string"}},
    },
]

VALUES: list[Any] = [
    "text",
    "",
    0,
    7,
    -3,
    1.0,
    2.5,
    True,
    False,
    None,
    [],
    [1, "x"],
    (1, 2),
    {},
    {"k": "v"},
]
KEYS = ["message", "a", "b", "flag", "maybe", "items", "nested", "anything", "n", "extra"]


def _arguments() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [{}]
    for key, value in itertools.product(KEYS, VALUES):
        cases.append({key: value})
    for (k1, v1), (k2, v2) in itertools.product(
        itertools.product(["a", "message"], VALUES), [("b", 1.5), ("extra", 1)]
    ):
        cases.append({k1: v1, k2: v2})
    return cases


@pytest.mark.parametrize("schema", PLAIN_SCHEMAS)
def test_the_fast_path_never_accepts_what_jsonschema_rejects(schema: dict[str, Any]) -> None:
    cls = validator_for(schema)
    validator = cls(schema)
    quick = _plain_object_check(schema, cls)
    assert quick is not None, "a plain schema gets the fast path"
    accepted = 0
    for arguments in _arguments():
        if quick(arguments):
            accepted += 1
            assert validator.is_valid(arguments), (schema, arguments)
    assert accepted > 0  # the fast path does answer, it is not always deferring


@pytest.mark.parametrize("schema", NOT_PLAIN)
def test_schemas_with_more_rules_go_to_jsonschema(schema: dict[str, Any]) -> None:
    assert _plain_object_check(schema, validator_for(schema)) is None


@pytest.mark.parametrize(
    ("schema", "arguments"),
    [
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": True}),
        ({"type": "object", "properties": {"n": {"type": "number"}}}, {"n": False}),
        ({"type": "object", "properties": {"l": {"type": "array"}}}, {"l": (1, 2)}),
        ({"type": "object", "properties": {"s": {"type": "string"}}, "required": ["s"]}, {}),
        ({"type": "object", "properties": {}, "additionalProperties": False}, {"x": 1}),
    ],
)
def test_invalid_arguments_are_not_waved_through(schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    cls = validator_for(schema)
    quick = _plain_object_check(schema, cls)
    assert quick is not None
    assert not quick(arguments)
    assert not cls(schema).is_valid(arguments)
