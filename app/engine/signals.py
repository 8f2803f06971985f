"""Waiting on a job without holding a thread: a change counter and a bounded snapshot queue.

The worker thread changes a job; front ends wait for the change. A thread waits on a condition; an
asyncio task waits on a future that the worker resolves with `loop.call_soon_threadsafe`, so a
thousand waiting requests cost a thousand futures, not a thousand threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ChangeSignal:
    """A version number bumped on every change; waiters wait for it to move past the one they saw."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._version = 0
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    @property
    def version(self) -> int:
        return self._version

    def bump(self) -> None:
        with self._cond:
            self._version += 1
            futures, self._futures = self._futures, []
            self._cond.notify_all()
        for loop, future in futures:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that event loop is closed: nobody waits there any more
                pass

    def wait(self, seen: int, timeout: float | None = None) -> int:
        """Block until the version differs from `seen` (or `timeout` passes); the version then."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen, timeout)
            return self._version

    async def wait_async(self, seen: int, timeout: float | None = None) -> int:
        """`wait` for asyncio: holds no thread while it waits."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._version != seen:
                return self._version
            future = loop.create_future()
            entry = (loop, future)
            self._futures.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with self._cond:
                if entry in self._futures:
                    self._futures.remove(entry)
        return self._version


def _wake(future: asyncio.Future) -> None:
    if not future.done():  # a waiter that timed out or was cancelled is already done
        future.set_result(None)


class Subscription(Generic[T]):
    """Items for one listener, oldest first, at most `limit` of them: when full, the oldest is dropped.
    `close` marks the end; the item put last before it (a job's final state) is never dropped."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T) -> None:
        with self._cond:
            if self._closed:
                return
            if len(self._items) >= self._limit:
                self._items.popleft()
            self._items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)

    def items(self, timeout: float | None = None) -> Iterator[T]:
        """Yield items until closed and empty, or until none comes for `timeout` seconds."""
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                    return
                if not self._items:
                    return
                item = self._items.popleft()
            yield item
