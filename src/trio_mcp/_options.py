"""The pool-wide options, defined, validated and documented once.

:func:`open_mcp_pool`, :func:`serve_mcp_pool` and :func:`start_portal` all take a
:class:`PoolOptions` — or its fields as keyword arguments, which are the same thing::

    trio_mcp.open_mcp_pool(servers, call_timeout=5)
    trio_mcp.open_mcp_pool(servers, trio_mcp.PoolOptions(call_timeout=5))
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import ConfigError
from ._handlers import Handlers

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["PoolOptions"]


def _frozen_variables(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigError("variables must be a mapping of names to strings")
    checked: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            # Never echo the value: variables usually hold secrets.
            raise ConfigError(f"variable {key!r} must map a string name to a string value")
        checked[key] = item
    return types.MappingProxyType(checked)


def _seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{attribute.name} must be a positive number of seconds (or math.inf)")


def _boolean(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name} must be a bool")


def _handlers(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Handlers):
        raise ConfigError(f"handlers must be a trio_mcp.Handlers or None, not {type(value).__name__}")


def _tracer_provider(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    # Imported only when one is given: OpenTelemetry's import is not free.
    from opentelemetry.trace import TracerProvider

    if not isinstance(value, TracerProvider):
        raise ConfigError(
            f"tracer_provider must be an opentelemetry.trace.TracerProvider or None, not {type(value).__name__}"
        )


@attrs.frozen(kw_only=True)
class PoolOptions:
    """Settings for a whole pool (a server's own config overrides the per-server ones).

    Attributes:
        variables: values for the ``${name}`` placeholders in servers' headers and
            environment values. Never shown in a repr, log or error.
        connect_timeout: seconds allowed to open a session.
        call_timeout: the default deadline of each request, in seconds (``math.inf``
            for none).
        validate_arguments: check tool names and arguments against the server's tool
            list before sending (one shared ``tools/list`` per session).
        handlers: the client-side :class:`Handlers` (sampling, elicitation, roots,
            logging) for every server; a server's own ``handlers`` override them.
        warm: open every server's session while the pool opens (concurrently, each
            bounded by its connect timeout) instead of on first use; a server that
            fails is logged and retried on its first call. See :meth:`MCPPool.connect`.
        tracer_provider: where the OpenTelemetry span of each request goes; None (the
            default) uses the global provider, and no span is made while none is set.
            See docs/telemetry.md.
    """

    variables: Mapping[str, str] = attrs.field(
        default=None, converter=_frozen_variables, repr=lambda value: f"<{len(value)} variables>"
    )
    connect_timeout: float = attrs.field(default=10.0, validator=_seconds)
    call_timeout: float = attrs.field(default=60.0, validator=_seconds)
    validate_arguments: bool = attrs.field(default=True, validator=_boolean)
    handlers: Handlers | None = attrs.field(default=None, validator=_handlers)
    warm: bool = attrs.field(default=False, validator=_boolean)
    tracer_provider: TracerProvider | None = attrs.field(default=None, validator=_tracer_provider)

    @classmethod
    def of(cls, options: PoolOptions | None, settings: Mapping[str, Any]) -> PoolOptions:
        """``options`` (or the defaults) with the keyword ``settings`` applied on top."""
        if options is None:
            options = cls()
        elif not isinstance(options, PoolOptions):
            raise ConfigError(f"options must be a trio_mcp.PoolOptions, not {type(options).__name__}")
        if not settings:
            return options
        unknown = sorted(set(settings) - set(attrs.fields_dict(cls)))
        if unknown:
            known = ", ".join(attrs.fields_dict(cls))
            raise TypeError(f"unknown pool option(s) {', '.join(map(repr, unknown))} (known: {known})")
        return attrs.evolve(options, **settings)
