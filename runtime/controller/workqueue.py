"""The work queue the controller's workers take keys from (client-go's rate-limited queue).

A key is queued once however often it is added; a key being worked on is not handed to a
second worker, and an add meanwhile queues it again when the first is done. `retry(key)`
queues it after an exponential backoff (`base_delay` × 2^failures, at most `max_delay`) and
`forget(key)` resets the count after a success; `add_after` queues a key later.

May import: the standard library only.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Hashable


class WorkQueue:
    def __init__(self, base_delay: float = 0.05, max_delay: float = 60.0) -> None:
        self.base_delay, self.max_delay = base_delay, max_delay
        self._cond = threading.Condition()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._sequence = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._shut = False

    def add(self, key: Hashable) -> None:
        with self._cond:
            if self._shut or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if not self._shut:
                heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._sequence), key))
                self._cond.notify()

    def retry(self, key: Hashable) -> float:
        """Queue the key again after its backoff; the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(self.max_delay, self.base_delay * 2 ** failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self) -> Hashable | None:
        """The next key (marked as being worked on), or None once the queue is shut down."""
        with self._cond:
            while True:
                if self._shut:
                    return None
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, key = heapq.heappop(self._delayed)
                    if key not in self._dirty:
                        self._dirty.add(key)
                        if key not in self._processing:
                            self._queue.append(key)
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                self._cond.wait(self._delayed[0][0] - now if self._delayed else None)

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shut = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)
