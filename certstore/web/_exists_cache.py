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
#: A cached presigned URL must stay valid this long past its entry's expiry (clock skew, the
#: browser's own redirect round trip).
MIN_URL_MARGIN = 60.0


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
        # key -> (expiry, presigned URL handed out for it while the entry lives, if any)
        self._expiry: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()

    @property
    def enabled(self) -> bool:
        """False with ``ttl`` 0: nothing is ever remembered."""
        return self.ttl > 0

    def confirmed(self, key: str) -> bool:
        """True when ``key`` was confirmed in S3 less than ``ttl`` seconds ago."""
        if not self.enabled:
            return False
        return self._entry(key) is not None

    def _entry(self, key: str) -> tuple[float, str | None] | None:
        now = self._clock()
        with self._lock:
            entry = self._expiry.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._expiry[key]
                return None
            self._expiry.move_to_end(key)
            return entry

    def url_for(self, key: str) -> str | None:
        """The presigned URL attached to a live entry for ``key``, if any.

        Reusing it for the rest of the entry's TTL saves presigning (~0.15 ms of botocore) on
        every hit; :meth:`attach_url` only attaches URLs that outlive the entry.
        """
        entry = self._entry(key)
        return entry[1] if entry is not None else None

    def attach_url(self, key: str, url: str, *, url_lifetime: float) -> None:
        """Keep ``url`` (valid for ``url_lifetime`` s from now) with ``key``'s live entry.

        The entry's expiry is not extended (the key is still re-checked every ``ttl``), and a
        URL that could expire before the entry does is not kept.
        """
        if url_lifetime < self.ttl + MIN_URL_MARGIN:
            return
        now = self._clock()
        with self._lock:
            entry = self._expiry.get(key)
            if entry is not None and now < entry[0]:
                self._expiry[key] = (entry[0], url)

    def remember(self, key: str) -> None:
        """Record that S3 holds ``key`` now (only call this after a HEAD found it)."""
        if not self.enabled:
            return
        expiry = self._clock() + self.ttl
        with self._lock:
            self._expiry[key] = (expiry, None)
            self._expiry.move_to_end(key)
            while len(self._expiry) > self.max_size:
                self._expiry.popitem(last=False)

    def claim_refresh(self, key: str) -> bool:
        """True (once) when a live entry is past half its TTL: the caller re-checks S3 for it
        in the background while hits keep being answered (stale-while-revalidate).

        A hot key is then never answered after a HEAD on the request path, yet the bound is
        unchanged: an entry that no HEAD re-confirms still expires ``ttl`` after the last one.
        Call :meth:`release_refresh` when the re-check is over, whatever its outcome.
        """
        if not self.enabled:
            return False
        now = self._clock()
        with self._lock:
            entry = self._expiry.get(key)
            if entry is None or now >= entry[0] or entry[0] - now > self.ttl / 2:
                return False
            if key in self._refreshing:
                return False
            self._refreshing.add(key)
            return True

    def release_refresh(self, key: str) -> None:
        """The background re-check claimed with :meth:`claim_refresh` is over."""
        with self._lock:
            self._refreshing.discard(key)

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
