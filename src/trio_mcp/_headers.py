"""Templating: ``${name}`` placeholders in a config's strings, filled from the pool's variables.

Two rule sets, by what the string usually holds:

* header values (remote servers) and ``env`` values (stdio servers) follow
  ``string.Template``: ``${name}`` or ``$name``, ``$$`` for a literal ``$``;
* ``args``, ``url`` and ``cwd`` know only the braced ``${name}``: a lone ``$`` stays
  as it is (regular expressions, shell snippets and ``$filter`` queries hold them),
  and ``$${`` is a literal ``${``.

Filled when a session connects, never earlier, so a pool can be built before the
secrets it will use are known. Errors name the field, the placeholder and the server,
never a value.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ._errors import ConfigError, TemplateError

if TYPE_CHECKING:
    from ._config import ServerConfig

__all__ = ["check_braced", "render_config", "render_templates"]


# ``$${`` (a literal ``${``), ``${name}``, or ``${`` followed by anything else (malformed).
_BRACED = re.compile(r"\$(?:(\$)(?=\{)|\{([A-Za-z_][A-Za-z0-9_]*)\}|(\{))")


def _braced(template: str, variables: Mapping[str, str]) -> str:
    """Only ``${name}`` is a placeholder; ``$${`` is a literal ``${``; any other ``$`` is literal."""

    def replace(match: re.Match[str]) -> str:
        escaped, name, _ = match.groups()
        return "$" if escaped else variables[name]

    return _BRACED.sub(replace, template)


def check_braced(what: str, template: str) -> None:
    """Raise :class:`ConfigError` if ``template`` holds a malformed ``${...}``."""
    if any(match[3] for match in _BRACED.finditer(template)):
        raise ConfigError(
            f"{what} has a malformed placeholder: use ${{name}} (letters, digits, _), and $${{ for a literal ${{"
        )


def _substitute(
    server: str, what: str, substitute: Callable[[Mapping[str, str]], str], variables: Mapping[str, str]
) -> str:
    try:
        return substitute(variables)
    except KeyError as exc:
        variable = str(exc.args[0])
        raise TemplateError(
            f"{what} of server {server!r} uses ${{{variable}}}, but the pool has no variable {variable!r}",
            server=server,
            variable=variable,
        ) from None


def render_templates(
    server: str, kind: str, templates: Mapping[str, str], variables: Mapping[str, str]
) -> dict[str, str]:
    """Substitute ``variables`` into every value of ``templates`` (``string.Template`` rules)."""
    return {
        name: _substitute(server, f"{kind} {name!r}", string.Template(template).substitute, variables)
        for name, template in templates.items()
    }


def render_config(
    server: str, config: ServerConfig, variables: Mapping[str, str]
) -> tuple[ServerConfig, dict[str, str]]:
    """``config`` with its ``args``/``url``/``cwd`` filled in, and its headers (or env) rendered.

    A missing variable is a :class:`TemplateError`; a URL that is no URL once filled, a
    :class:`ConfigError`. Both name the server and the field, never a value.
    """
    what, templates = config.templates()
    rendered = render_templates(server, what, templates, variables)

    def fill(field: str, template: str) -> str:
        if "${" not in template:
            return template
        return _substitute(server, field, functools.partial(_braced, template), variables)

    try:
        filled = config.fill_placeholders(fill)
    except ConfigError as error:
        raise ConfigError(f"server {server!r}: {error}", server=server) from None
    return filled, rendered
