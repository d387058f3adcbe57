"""Resource subscriptions: ``notifications/resources/updated`` as an async iterator.

``async with pool.subscribe_resource(server, uri) as updates: async for update in updates``
works the same in both protocol eras:

- on a 2025-era session the pool sends ``resources/subscribe`` and routes the
  session's ``notifications/resources/updated`` to every subscription whose URI the
  notification names (or a sub-resource of it); leaving the block sends
  ``resources/unsubscribe`` once no other subscription of that session wants the URI;
- on a 2026-07-28 session each subscription is one ``subscriptions/listen`` stream
  with that URI in its filter, held by a task in the session's nursery.

Either way a small task in the session's nursery holds the subscription, so it
never outlives its session: when the session is lost (or the pool closes) the
iterator ends with :class:`ServerDisconnectedError` (or :class:`PoolClosedError`);
no subscription is silently carried over to a new session, where updates made in
between would be missed. Updates not yet read are coalesced per URI (an update says
"read it again"), so a slow reader costs memory bounded by the number of URIs.

The subscription object is not bound to the task that opened it (opening, reading
and closing are separate calls), which is what lets a portal drive one from a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import attrs
import mcp.types as types
import trio
from mcp.client.subscriptions import ResourceUpdated
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ._errors import NotSupportedError, PoolClosedError, ServerDisconnectedError

if TYPE_CHECKING:
    from ._session import LiveSession

__all__ = [
    "BlockingResourceSubscription",
    "ResourceSubscription",
    "ResourceUpdate",
    "SubscriptionHub",
    "open_feed",
]

logger = logging.getLogger("trio_mcp")

# Distinct URIs waiting to be read before they are collapsed into the subscribed one.
_MAX_PENDING = 1024
# How long leaving a subscription may spend telling the server (resources/unsubscribe).
_UNSUBSCRIBE_TIMEOUT = 5.0

_End = Literal["closed", "ended", "lost"]


@attrs.frozen
class ResourceUpdate:
    """The resource at ``uri`` on ``server`` changed: read it again to see how."""

    server: str
    uri: str


def _covers(subscribed: str, uri: str) -> bool:
    """Whether an update of ``uri`` concerns a subscription to ``subscribed`` (itself or a sub-resource)."""
    return uri == subscribed or uri.startswith(subscribed.rstrip("/") + "/")


@attrs.define(eq=False)
class _Feed:
    """One subscription's state: the URIs updated and not yet read, and how it ended."""

    uri: str
    #: Held by a 2026-07-28 listen stream (else a 2025-era resources/subscribe).
    modern: bool
    #: Cancelling it ends the task that holds the subscription in the session's nursery.
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _pending: dict[str, None] = attrs.field(factory=dict)
    end: _End | None = None
    _wake: trio.Event = attrs.field(factory=trio.Event)

    def push(self, uri: str) -> None:
        if self.end is not None:
            return
        if uri not in self._pending and len(self._pending) >= _MAX_PENDING:
            # Too many distinct sub-resources unread: "everything under it changed".
            self._pending.clear()
            uri = self.uri
        self._pending[uri] = None
        self._wake.set()

    def finish(self, end: _End) -> None:
        """Record how the subscription ended (the first reason wins) and wake readers."""
        if self.end is None:
            self.end = end
            self._wake.set()

    async def next(self) -> str | None:
        """The next updated URI; None once the subscription has ended and nothing is left."""
        while True:
            if self._pending and self.end != "closed":
                uri = next(iter(self._pending))
                del self._pending[uri]
                return uri
            if self.end is not None:
                return None
            self._wake = trio.Event()
            await self._wake.wait()


@attrs.define(eq=False)
class SubscriptionHub:
    """One session's 2025-era subscriptions, by URI, fed from its notifications."""

    _feeds: dict[str, set[_Feed]] = attrs.field(factory=dict)

    def deliver(self, uri: str) -> None:
        """Route one ``notifications/resources/updated``."""
        for subscribed, feeds in self._feeds.items():
            if _covers(subscribed, uri):
                for feed in feeds:
                    feed.push(uri)

    def add(self, feed: _Feed) -> None:
        self._feeds.setdefault(feed.uri, set()).add(feed)

    def remove(self, feed: _Feed) -> bool:
        """Forget ``feed``; True if it was the last subscription to its URI."""
        feeds = self._feeds.get(feed.uri)
        if feeds is None:
            return False
        feeds.discard(feed)
        if feeds:
            return False
        del self._feeds[feed.uri]
        return True


async def open_feed(live: LiveSession, uri: str) -> _Feed:
    """Subscribe to ``uri`` on ``live``; the feed ends when the session does.

    Raises :class:`NotSupportedError` (nothing sent) if the server did not declare
    resource subscriptions; anything else the server or transport raises is left to
    the pool's one translation boundary.
    """
    capability = live.client.server_capabilities.resources
    if capability is None or not capability.subscribe:
        raise NotSupportedError(
            f"server {live.server!r} does not offer resource subscriptions "
            "(it did not declare resources.subscribe); nothing was sent",
            server=live.server,
        )
    feed = _Feed(uri, live.client.protocol_version in MODERN_PROTOCOL_VERSIONS)
    if feed.modern:
        await live.start_background(_hold_listen, live, feed)
        return feed
    live.subscriptions.add(feed)
    try:
        await live.start_background(_hold_legacy, live, feed)
        request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
        await live.client.session.send_request(request, types.EmptyResult)
    except BaseException:
        feed.finish("closed")
        feed.scope.cancel()
        live.subscriptions.remove(feed)
        raise
    return feed


async def _hold_legacy(live: LiveSession, feed: _Feed, *, task_status: trio.TaskStatus[None]) -> None:
    """In the session's nursery: end ``feed`` when the session is lost or closes."""
    try:
        with feed.scope:
            task_status.started()
            await live.lost.wait()
    finally:
        feed.finish("lost")


async def _hold_listen(live: LiveSession, feed: _Feed, *, task_status: trio.TaskStatus[None]) -> None:
    """In the session's nursery: hold one ``subscriptions/listen`` stream for ``feed.uri``.

    A failure to open the stream is raised to the subscriber (through ``start``, under
    the subscriber's deadline); one after that ends the feed, as does the session's end.
    """
    started = False
    try:
        with feed.scope:
            async with live.client.listen(resource_subscriptions=[feed.uri]) as subscription:
                if feed.uri not in (subscription.honored.resource_subscriptions or ()):
                    raise NotSupportedError(
                        f"server {live.server!r} did not accept a subscription to {feed.uri!r}",
                        server=live.server,
                    )
                task_status.started()
                started = True
                async for event in subscription:
                    if isinstance(event, ResourceUpdated):
                        feed.push(event.uri)
                feed.finish("ended")  # the server closed the stream gracefully
    except Exception:
        if not started:
            raise
        # The stream dropped (SubscriptionLost) or failed: this subscription is over.
        logger.debug("server %r: the subscription to %r was lost", live.server, feed.uri, exc_info=True)
    finally:
        feed.finish("lost")


async def _unsubscribe(live: LiveSession, feed: _Feed) -> None:
    """Tell a 2025-era server we no longer follow ``feed.uri``, unless another subscription does.

    Shielded but brief: leaving a subscription (even a cancelled one) tells the server,
    so it stops sending updates nobody reads.
    """
    if not live.subscriptions.remove(feed) or live.lost.is_set():
        return
    request = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=feed.uri))
    # Sending the request checkpoints (unless it fails first, and then nothing waits).
    with trio.CancelScope(shield=True), trio.move_on_after(_UNSUBSCRIBE_TIMEOUT):  # noqa: ASYNC912
        try:
            await live.client.session.send_request(request, types.EmptyResult)
        except Exception:
            logger.debug("server %r: resources/unsubscribe %r failed", live.server, feed.uri, exc_info=True)


class ResourceSubscription:
    """Updates of one resource on one server: an async context manager and async iterator.

    Made by :meth:`MCPPool.subscribe_resource`::

        async with pool.subscribe_resource("files", "file:///notes.md") as updates:
            async for update in updates:
                text = await pool.read_resource(update.server, update.uri)

    Entering subscribes (raising the pool's usual errors, or
    :class:`NotSupportedError` if the server offers no subscriptions); iterating
    yields a :class:`ResourceUpdate` per change (several unread updates of one URI
    arrive as one); leaving unsubscribes. If the session is lost the iteration ends
    with :class:`ServerDisconnectedError` (:class:`PoolClosedError` if the pool is
    closing): subscribe again to go on, and re-read what you follow, since changes
    made meanwhile were not seen. A 2026-07-28 server that closes the stream
    gracefully ends the iteration normally.
    """

    def __init__(
        self,
        server: str,
        uri: str,
        opener: Callable[[], Awaitable[tuple[LiveSession, _Feed]]],
        closing: Callable[[], bool],
    ) -> None:
        self.server = server
        self.uri = uri
        self._opener = opener
        self._closing = closing
        self._live: LiveSession | None = None
        self._feed: _Feed | None = None
        self._state: Literal["new", "open", "closed"] = "new"

    def __repr__(self) -> str:
        return f"<ResourceSubscription server={self.server!r} uri={self.uri!r} state={self._state}>"

    async def __aenter__(self) -> ResourceSubscription:
        if self._state != "new":
            raise RuntimeError("a ResourceSubscription can be entered only once")
        self._state = "open"
        try:
            self._live, self._feed = await self._opener()
        except BaseException:
            self._state = "closed"
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Unsubscribe (idempotent); iteration ends."""
        if self._state == "closed":
            return
        self._state = "closed"
        live, feed = self._live, self._feed
        if live is None or feed is None:
            return
        lost = feed.end == "lost"
        feed.finish("closed")
        feed.scope.cancel()  # ends the task holding it (and a 2026 listen stream)
        if feed.modern:
            return
        if lost:
            live.subscriptions.remove(feed)
        else:
            await _unsubscribe(live, feed)

    def __aiter__(self) -> ResourceSubscription:
        return self

    async def __anext__(self) -> ResourceUpdate:
        feed = self._feed
        if feed is None:
            if self._state == "new":
                raise RuntimeError("enter the subscription (async with) before iterating it")
            raise StopAsyncIteration
        uri = await feed.next()
        if uri is not None:
            return ResourceUpdate(self.server, uri)
        if feed.end == "lost":
            if self._closing():
                raise PoolClosedError(
                    f"the pool closed; the subscription to {self.uri!r} on server {self.server!r} ended",
                    server=self.server,
                )
            raise ServerDisconnectedError(
                f"the session to server {self.server!r} was lost; the subscription to {self.uri!r} ended "
                "(subscribe again, and re-read the resource: changes meanwhile were not seen)",
                server=self.server,
            )
        raise StopAsyncIteration


async def _subscribe(server: str, subscription: ResourceSubscription) -> None:
    await subscription.__aenter__()


async def _next_update(server: str, subscription: ResourceSubscription) -> ResourceUpdate | None:
    try:
        return await subscription.__anext__()
    except StopAsyncIteration:
        return None


async def _unsubscribe_from(server: str, subscription: ResourceSubscription) -> None:
    await subscription.aclose()


class BlockingResourceSubscription:
    """A :class:`ResourceSubscription` for threads, from :meth:`Portal.subscribe_resource`::

        with portal.subscribe_resource("files", "file:///notes.md") as updates:
            for update in updates:  # blocks until the next update
                ...

    Each step (subscribe, each update, unsubscribe) is one portal call; the errors are
    the trio iterator's.
    """

    def __init__(
        self, call: Callable[..., Any], subscription: ResourceSubscription, timeout: float | None
    ) -> None:
        self._call = call
        self._subscription = subscription
        self._timeout = timeout

    def __repr__(self) -> str:
        return repr(self._subscription).replace("<ResourceSubscription", "<BlockingResourceSubscription", 1)

    def __enter__(self) -> BlockingResourceSubscription:
        subscription = self._subscription
        self._call(_subscribe, (subscription.server, subscription), self._timeout)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        try:
            self._call(_unsubscribe_from, (self._subscription.server, self._subscription), None)
        except PoolClosedError:
            pass  # the portal closed: the subscription went with it

    def __iter__(self) -> BlockingResourceSubscription:
        return self

    def __next__(self) -> ResourceUpdate:
        update: ResourceUpdate | None = self._call(
            _next_update, (self._subscription.server, self._subscription), None
        )
        if update is None:
            raise StopIteration
        return update
