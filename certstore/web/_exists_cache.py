"""A short-lived memory of keys the service has seen in S3, so hot downloads skip the HEAD.

A download may only redirect to S3 when S3 holds the object, which costs one HeadObject per
request. For a key that was *positively* confirmed a moment ago that answer is very likely
still true, so :class:`ExistsCache` remembers it for ``ttl`` seconds. Only positives are
stored: a missing object or an S3 error is never remembered, so a key uploaded or repaired
since is found on the next request, and a fallback to local is never prolonged.

The trade-off: when *another* process deletes the S3 object, this service may still redirect
to it (and the browser gets S3's 404) for at most ``ttl`` seconds. The service forgets a key
itself on its own uploads and whenever it learns the object is gone. ``ttl`` 0 disables the
cache (every download HEADs, the behaviour before the cache existed).

Entries expire ``ttl`` seconds after they were confirmed (a hit does not extend them, so a hot
key is re-checked every ``ttl`` seconds); at most ``max_size`` keys are kept, the least
recently used is dropped first. Thread-safe: downloads resolve in Starlette's thread pool.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Keys remembered at most (a key and a float each: about a megabyte at this size).
DEFAULT_MAX_SIZE = 10_000
#: The longest ``ttl`` accepted, matching ``CERTSTORE_WEB_EXISTS_TTL``'s bound.
MAX_TTL = 300.0


class ExistsCache:
    """Keys confirmed to exist in S3, each for ``ttl`` seconds, at most ``max_size`` of them.

    ``clock`` returns seconds (monotonic by default); tests pass a fake one.
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(ttl, bool) or not 0 <= ttl <= MAX_TTL:
            raise ValueError(f"ttl must be from 0 to {MAX_TTL:g} seconds, got {ttl!r}")
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.ttl = float(ttl)
        self.max_size = max_size
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False with ``ttl`` 0: nothing is ever remembered."""
        return self.ttl > 0

    def confirmed(self, key: str) -> bool:
        """True when ``key`` was confirmed in S3 less than ``ttl`` seconds ago."""
        if not self.enabled:
            return False
        now = self._clock()
        with self._lock:
            expiry = self._expiry.get(key)
            if expiry is None:
                return False
            if now >= expiry:
                del self._expiry[key]
                return False
            self._expiry.move_to_end(key)
            return True

    def remember(self, key: str) -> None:
        """Record that S3 holds ``key`` now (only call this after a HEAD found it)."""
        if not self.enabled:
            return
        expiry = self._clock() + self.ttl
        with self._lock:
            self._expiry[key] = expiry
            self._expiry.move_to_end(key)
            while len(self._expiry) > self.max_size:
                self._expiry.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop ``key``: the service changed it, or learned S3 no longer has it."""
        with self._lock:
            self._expiry.pop(key, None)

    def clear(self) -> None:
        """Drop every key."""
        with self._lock:
            self._expiry.clear()

    def __len__(self) -> int:
        """Keys held, expired ones not yet dropped included."""
        with self._lock:
            return len(self._expiry)
