"""One result that any number of tasks wait on: the pool's single coalescing primitive.

A connection attempt (``_server.py``) and a ``tools/list`` walk (``_session.py``) are
each done once for every caller that arrives while it runs. :class:`SharedOutcome`
is that "done once, awaited by many" value. An error is re-raised in each waiter as
its own copy, so one waiter's traceback never grows into another's.
"""

from __future__ import annotations

import copy
from typing import Generic, TypeVar

import attrs
import trio

__all__ = ["SharedOutcome"]

T = TypeVar("T")


@attrs.define(eq=False)
class SharedOutcome(Generic[T]):
    """A value or an error, set once, awaited by any number of tasks."""

    _done: trio.Event = attrs.field(factory=trio.Event, init=False)
    _value: T | None = attrs.field(default=None, init=False)
    _error: BaseException | None = attrs.field(default=None, init=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        """The error it ended with (the original, not a copy); None if not failed."""
        return self._error

    def set(self, value: T) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> T:
        """The value, once set; or a fresh copy of the error, raised here."""
        await self._done.wait()
        if self._error is not None:
            raise _fresh(self._error)
        return self._value  # type: ignore[return-value]


def _fresh(error: BaseException) -> BaseException:
    """A copy of ``error`` to raise in one more task (tracebacks are per raise)."""
    cls = type(error)
    try:
        clone = cls.__new__(cls, *error.args)  # no __init__: keyword-only fields come from __dict__
    except TypeError:  # a constructor that needs more than the args (pydantic's ValidationError)
        clone = copy.copy(error)
    clone.args = error.args
    if hasattr(error, "__dict__"):
        clone.__dict__.update(error.__dict__)
    clone.__cause__ = error.__cause__
    clone.__context__ = error.__context__
    clone.__suppress_context__ = error.__suppress_context__
    clone.__traceback__ = None
    return clone
