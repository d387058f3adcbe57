"""Proving that what a caller passes can be sent as JSON, before anything is sent.

The SDK serializes a request only in its transport's writer task. A value JSON cannot
carry fails there, where it is nobody's call's error: a lone surrogate (what
``os.fsdecode`` gives for a non-UTF-8 file name) kills the whole session on stdio and
Streamable HTTP and loses the request on SSE, and other values are silently changed
(NaN becomes ``null``, a set a list). So every argument is walked once here, in the
caller's task, and the first value that is not plain JSON raises
:class:`InvalidArgumentsError` naming its path (``arguments['files'][2]``), never its
value; nothing is sent and no other call on the session is touched.

Plain JSON means: ``dict`` with ``str`` keys, ``list``, ``tuple``, ``str`` (valid
Unicode), ``int``, finite ``float``, ``bool`` and ``None`` (subclasses included,
so a ``StrEnum`` or an ``OrderedDict`` is fine), nested at most
:data:`MAX_DEPTH` deep.

Why a walk rather than ``json.dumps(allow_nan=False)`` plus a UTF-8 check: the C
encoder is faster only for large payloads, yet it turns ``int``, ``float``, ``bool``
and ``None`` keys into strings silently (the SDK then rejects the request after
sending half of it), and it cannot say *where* the bad value is. The walk costs
about a microsecond for a typical small argument dict (see ``docs/reliability.md``)
and finds cycles without bookkeeping: a cyclic structure is simply too deep, and
only then is it walked a second time to tell the two apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidArgumentsError

__all__ = [
    "MAX_DEPTH",
    "check_meta",
    "check_prompt_arguments",
    "check_string_map",
    "check_text",
    "check_tool_arguments",
]

#: How deeply arguments may nest. JSON parsers bound nesting too (the Python SDK's
#: servers drop a message nested about 200 deep without answering), so a deeper
#: request would only wait out its deadline.
MAX_DEPTH = 128

_Problem = tuple[list[Any], str]
# How many steps of a path an error message shows.
_SHOWN_STEPS = 8


def check_tool_arguments(server: str, tool: str, arguments: Any) -> None:
    """Raise :class:`InvalidArgumentsError` unless ``arguments`` is a JSON object."""
    if _is_mapping(server, f"tool {tool!r}", "a mapping (a JSON object)", arguments):
        problem = _object_problem(arguments, 1)
        if problem is not None:
            _raise(server, f"tool {tool!r}", arguments, problem)


def check_prompt_arguments(server: str, prompt: str, arguments: Any) -> None:
    """Raise :class:`InvalidArgumentsError` unless ``arguments`` maps strings to strings."""
    if not _is_mapping(server, f"prompt {prompt!r}", "a mapping of strings", arguments):
        return
    for key, value in arguments.items():
        problem = _key_problem(key)
        if problem is None:
            if isinstance(value, str):
                problem = _string_problem(value)
            else:
                problem = [], f"is {_a(value)}; prompt arguments are strings"
            if problem is not None:
                problem[0].append(key)
        if problem is not None:
            _raise(server, f"prompt {prompt!r}", arguments, problem)


def check_meta(server: str, meta: Any) -> dict[str, Any] | None:
    """A private copy of a request's ``_meta``, once proven to be a plain JSON object."""
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise InvalidArgumentsError(
            f"meta must be a mapping (a JSON object) or None, not {type(meta).__name__}", server=server
        )
    problem = _object_problem(meta, 1)
    if problem is not None:
        _raise(server, "the request", meta, problem, label="meta")
    return dict(meta)


def check_string_map(server: str, what: str, values: Any) -> dict[str, str] | None:
    """A private copy of a mapping of strings to strings (``what`` names it in errors)."""
    if not _is_mapping(server, what, "a mapping of strings", values):
        return None
    for key, value in values.items():
        check_text(server, f"a key of {what}", key)
        check_text(server, f"the value of {what}[{key!r}]", value)
    return dict(values)


def _is_mapping(server: str, what: str, expected: str, arguments: Any) -> bool:
    """False for None; True for a mapping; else the error."""
    if arguments is None:
        return False
    if not isinstance(arguments, Mapping):
        raise InvalidArgumentsError(
            f"arguments for {what} must be {expected} or None, not {type(arguments).__name__}",
            server=server,
        )
    return True


def check_text(server: str, what: str, value: Any) -> None:
    """Raise :class:`InvalidArgumentsError` unless ``value`` is a string JSON can carry.

    For names and URIs sent beside the arguments; ``what`` says which (``"the tool
    name"``).
    """
    problem = _string_problem(value) if isinstance(value, str) else ([], f"is {_a(value)}, not a string")
    if problem is not None:
        raise InvalidArgumentsError(f"{what} {problem[1]}; nothing was sent", server=server)


# -- the walk ------------------------------------------------------------------------
#
# Each function returns None when its value is fine, else (path, reason) with the path
# innermost-first (each container appends its key on the way out), so the fine case
# builds nothing.


def _a(value: object) -> str:
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _string_problem(value: str) -> _Problem | None:
    if value.isascii():  # O(1) in CPython: a flag of the string
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return [], (
            "is a string holding a lone surrogate, which is not valid Unicode and cannot be sent "
            "(a file name from os.fsdecode? decode its bytes with errors='replace' instead)"
        )
    return None


def _key_problem(key: object) -> _Problem | None:
    if not isinstance(key, str):
        return [], f"has {_a(key)} key; JSON object keys are strings"
    problem = _string_problem(key)
    if problem is not None:
        return [], "has a key holding a lone surrogate, which is not valid Unicode and cannot be sent"
    return None


def _object_problem(mapping: Mapping[Any, Any], depth: int) -> _Problem | None:
    if depth > MAX_DEPTH:
        return [], ""  # the reason is filled in by _raise, which looks for a cycle
    for key, value in mapping.items():
        if type(key) is not str or not key.isascii():
            problem = _key_problem(key)
            if problem is not None:
                return problem
        problem = _value_problem(value, depth)
        if problem is not None:
            problem[0].append(key)
            return problem
    return None


def _value_problem(value: Any, depth: int) -> _Problem | None:
    # The exact-type tests first: they are what arguments are made of.
    cls = type(value)
    if cls is str:
        return None if value.isascii() else _string_problem(value)
    if cls is int or cls is bool or value is None:
        return None
    if cls is float or isinstance(value, float):
        if math.isfinite(value):
            return None
        return [], "is a float that is not finite (NaN or infinity), which JSON cannot carry"
    if isinstance(value, dict):
        return _object_problem(value, depth + 1)
    if isinstance(value, list | tuple):
        if depth + 1 > MAX_DEPTH:
            return [], ""
        for index, item in enumerate(value):
            problem = _value_problem(item, depth + 1)
            if problem is not None:
                problem[0].append(index)
                return problem
        return None
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, int):
        return None
    return [], _unsendable(value)


def _unsendable(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"is {_a(value)}; JSON has no bytes (decode it to a str, or base64-encode it)"
    if isinstance(value, set | frozenset):
        return f"is {_a(value)}; JSON has no sets (pass a list)"
    if isinstance(value, Mapping):
        return f"is {_a(value)}; pass a dict"
    return f"is {_a(value)}, which JSON cannot carry (pass only dict, list, str, int, float, bool, None)"


def _cycle_at(value: Any, path: list[Any]) -> int | None:
    """How many steps along ``path`` (outermost first) lead back to a container already passed."""
    seen: set[int] = set()
    for steps, key in enumerate(path):
        if id(value) in seen:
            return steps
        seen.add(id(value))
        value = value[key]
    return len(path) if id(value) in seen else None


def _raise(
    server: str, what: str, arguments: Mapping[Any, Any], problem: _Problem, *, label: str = "arguments"
) -> None:
    path, reason = problem
    path.reverse()
    if not reason:
        steps = _cycle_at(arguments, path)
        if steps is not None:
            path = path[:steps]
            reason = "refers back to a container that holds it (a cycle), which JSON cannot carry"
        else:
            reason = f"is nested more than {MAX_DEPTH} levels deep"
    where = label + "".join(f"[{key!r}]" for key in path[:_SHOWN_STEPS])
    if len(path) > _SHOWN_STEPS:
        where += "[...]"
    raise InvalidArgumentsError(f"{where} for {what} {reason}; nothing was sent", server=server)
