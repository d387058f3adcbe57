"""Templating: ``${name}`` placeholders in header values (remote servers) and
environment values (stdio servers), filled from the pool's variables.

Filled when a session connects, never earlier, so a pool can be built before the
secrets it will use are known. Errors name the header (or variable), the placeholder
and the server, never a value.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from ._errors import TemplateError

__all__ = ["render_templates"]


def render_templates(
    server: str, kind: str, templates: Mapping[str, str], variables: Mapping[str, str]
) -> dict[str, str]:
    """Substitute ``variables`` into every value of ``templates`` (``string.Template`` rules)."""
    rendered: dict[str, str] = {}
    for name, template in templates.items():
        try:
            rendered[name] = string.Template(template).substitute(variables)
        except KeyError as exc:
            variable = str(exc.args[0])
            raise TemplateError(
                f"{kind} {name!r} of server {server!r} uses ${{{variable}}}, "
                f"but the pool has no variable {variable!r}",
                server=server,
                variable=variable,
            ) from None
    return rendered
