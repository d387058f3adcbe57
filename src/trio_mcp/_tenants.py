"""Credentials per tenant: one pool per identity, a bounded number of them.

A multi-tenant app calls the same servers for many users, each with their own
credentials. :func:`serve_tenant_pools` keeps a pool per identity, built from
``servers_for(identity)`` on that identity's first call, and never lets two identities
share one: a session (and the token behind it) belongs to exactly one identity. At most
``max_tenants`` pools are open; the least recently used idle one is closed to make room,
and if every one is in use the call fails at once with :class:`ServerOverloadedError`.

Each tenant's pool runs in its own task (a pool must be closed by the task that opened
it); callers reach it through :meth:`TenantPools.pool`, which pins it while in use.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx2
import mcp.types as types
import trio

from ._auth import OAuth
from ._config import ServerConfig
from ._errors import ConfigError, PoolClosedError, ServerOverloadedError
from ._pool import MCPPool, open_mcp_pool
from ._shared import SharedOutcome

__all__ = ["TenantPools", "serve_tenant_pools"]

logger = logging.getLogger("trio_mcp")

ServersFor = Callable[[str], Mapping[str, ServerConfig]]


@attrs.define(eq=False)
class _Tenant:
    identity: str
    started: SharedOutcome[MCPPool] = attrs.field(factory=SharedOutcome)
    close: trio.Event = attrs.field(factory=trio.Event)
    users: int = 0
    last_used: float = 0.0
    #: The credential objects its servers use (see ``_claim``).
    claimed: list[int] = attrs.field(factory=list)


def _credentials(servers: Mapping[str, ServerConfig]) -> list[tuple[str, object]]:
    """The objects that hold the servers' credentials: shared across identities, they leak."""
    held: list[tuple[str, object]] = []
    for name, config in servers.items():
        auth = getattr(config, "auth", None)
        if isinstance(auth, httpx2.Auth):
            held.append((name, auth))
        elif isinstance(auth, OAuth):
            if auth.token_store is None:
                raise ConfigError(
                    f"server {name!r}: an OAuth per identity needs a token_store of its own "
                    "(the default file store is one per server, not per identity)"
                )
            held.append((name, auth.token_store))
        elif auth is not None and getattr(auth, "token_store", None) is not None:
            held.append((name, auth.token_store))
    return held


@attrs.define(eq=False)
class TenantPools:
    """The pools of many identities; see :func:`serve_tenant_pools`."""

    _nursery: trio.Nursery
    _servers_for: ServersFor
    max_tenants: int
    _options: dict[str, Any]
    _tenants: dict[str, _Tenant] = attrs.field(factory=dict, init=False)
    #: id() of each credential object in use -> the identity using it.
    _owners: dict[int, str] = attrs.field(factory=dict, init=False)
    _closing: trio.Event = attrs.field(factory=trio.Event, init=False)

    @property
    def identities(self) -> list[str]:
        """The identities whose pools are open (or opening), least recently used first."""
        return [tenant.identity for tenant in sorted(self._tenants.values(), key=lambda t: t.last_used)]

    def close(self) -> None:
        """Close every tenant's pool; later calls fail with :class:`PoolClosedError`."""
        self._closing.set()
        for tenant in self._tenants.values():
            tenant.close.set()
        self._tenants.clear()

    @asynccontextmanager
    async def pool(self, identity: str) -> AsyncIterator[MCPPool]:
        """``identity``'s pool, opened on first use, kept open (not evicted) meanwhile."""
        if not isinstance(identity, str) or not identity:
            raise ConfigError("an identity must be a non-empty string")
        if self._closing.is_set():
            raise PoolClosedError("the tenant pools are closed")
        tenant = self._tenants.get(identity)
        if tenant is None:
            self._make_room()
            tenant = self._tenants[identity] = _Tenant(identity, last_used=trio.current_time())
            self._nursery.start_soon(self._run, tenant)  # noqa: ASYNC113 (awaited below, via .started)
        tenant.users += 1
        try:
            yield await tenant.started.wait()
        finally:
            tenant.users -= 1
            tenant.last_used = trio.current_time()

    async def tool_call(
        self, identity: str, server: str, name: str, arguments: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> types.CallToolResult:
        """:meth:`MCPPool.tool_call` on ``identity``'s pool."""
        async with self.pool(identity) as pool:
            return await pool.tool_call(server, name, arguments, **kwargs)

    async def list_tools(self, identity: str, server: str) -> list[types.Tool]:
        """:meth:`MCPPool.list_tools` on ``identity``'s pool."""
        async with self.pool(identity) as pool:
            return await pool.list_tools(server)

    def _make_room(self) -> None:
        if len(self._tenants) < self.max_tenants:
            return
        idle = [tenant for tenant in self._tenants.values() if tenant.users == 0]
        if not idle:
            raise ServerOverloadedError(
                f"all {self.max_tenants} tenant pools are in use (max_tenants); try again later"
            )
        victim = min(idle, key=lambda tenant: tenant.last_used)
        self._forget(victim)
        victim.close.set()

    def _forget(self, tenant: _Tenant) -> None:
        if self._tenants.get(tenant.identity) is tenant:
            del self._tenants[tenant.identity]
        for key in tenant.claimed:
            if self._owners.get(key) == tenant.identity:
                del self._owners[key]
        tenant.claimed.clear()

    def _claim(self, tenant: _Tenant, servers: Mapping[str, ServerConfig]) -> None:
        """Refuse credentials that another identity's pool holds."""
        held = _credentials(servers)
        for name, credential in held:
            owner = self._owners.get(id(credential))
            if owner is not None and owner != tenant.identity:
                raise ConfigError(
                    f"server {name!r}: identities {owner!r} and {tenant.identity!r} were given the same "
                    "credentials object; servers_for must build credentials (and token stores) per identity"
                )
        for _name, credential in held:
            self._owners[id(credential)] = tenant.identity
            tenant.claimed.append(id(credential))

    async def _run(self, tenant: _Tenant) -> None:
        """The task that owns one identity's pool, from open to close."""
        try:
            servers = self._servers_for(tenant.identity)
            self._claim(tenant, servers)
            async with open_mcp_pool(servers, **self._options) as pool:
                tenant.started.set(pool)
                await tenant.close.wait()
        except Exception as exc:
            # A caller waiting for the pool gets the error; a pool that already ran
            # only logs it (its callers had their answers).
            if not tenant.started.done:
                tenant.started.fail(exc)
            else:
                logger.warning(
                    "tenant pool of %r failed while closing (%s)", tenant.identity, type(exc).__name__
                )
        finally:
            self._forget(tenant)


def _check_max(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("max_tenants must be a whole number >= 1")
    return value


async def serve_tenant_pools(
    servers_for: ServersFor,
    *,
    max_tenants: int = 64,
    task_status: trio.TaskStatus[TenantPools] = trio.TASK_STATUS_IGNORED,
    **pool_options: Any,
) -> None:
    """Keep a pool per identity, in a nursery you own::

        tenants = await nursery.start(trio_mcp.serve_tenant_pools, servers_for)
        result = await tenants.tool_call(user.id, "notes", "search", {"q": "trio"})

    ``servers_for(identity)`` returns that identity's server configs — with credentials
    of its own: an ``httpx2.Auth`` object, or a token store, that another identity's
    configs also hold is refused (:class:`ConfigError`), and so is an ``OAuth`` without
    a ``token_store``. ``pool_options`` go to :func:`open_mcp_pool`. Serves until this
    task is cancelled or :meth:`TenantPools.close` is called.
    """
    if not callable(servers_for):
        raise ConfigError("servers_for must be a function of the identity")
    async with trio.open_nursery() as nursery:
        tenants = TenantPools(nursery, servers_for, _check_max(max_tenants), dict(pool_options))
        task_status.started(tenants)
        try:
            await tenants._closing.wait()
        finally:
            tenants.close()
