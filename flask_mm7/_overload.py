"""A cap on MM7 requests handled at once, so a burst is refused cheaply instead of queued.

:class:`ConcurrencyLimit` wraps a :class:`threading.BoundedSemaphore` taken without blocking:
a request over the cap is answered at once (503 with ``Retry-After``, which every relay
retries) rather than holding a worker thread while it waits. Knows nothing of MIME, SOAP,
WSGI or Flask.
"""

from __future__ import annotations

import threading


class ConcurrencyLimit:
    """At most ``limit`` holders at a time; :meth:`try_acquire` never waits."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the concurrency limit must be at least 1, not {limit}")
        #: the most requests admitted at once
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        """How many requests hold a slot now."""
        return self._active

    def try_acquire(self) -> bool:
        """Take a slot if one is free; False at once when all are taken."""
        if not self._semaphore.acquire(blocking=False):
            return False
        with self._lock:
            self._active += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by :meth:`try_acquire`."""
        self._semaphore.release()  # ValueError on a release without an acquire
        with self._lock:
            self._active -= 1
