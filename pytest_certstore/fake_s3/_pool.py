"""Per-test buckets without per-test bucket *names*.

botocore resolves the endpoint rule set (~1.3 ms) for every call whose parameters (bucket,
key) it has not seen; its cache is per client and keyed by those parameters. A fixture that
names each test's bucket ``test-<uuid>`` pays that on every call of every test. The pool hands
out names from a small fixed set instead: a name is leased by one test at a time, its bucket
is recreated empty for each lease, so each test still gets a fresh, empty bucket nobody else
is using, and the client's resolver cache stays warm.
"""

from __future__ import annotations

import threading

__all__ = ["BucketPool"]


class BucketPool:
    """Lease bucket names ``<prefix>-0``, ``<prefix>-1``, ... (lowest free one first)."""

    def __init__(self, prefix: str = "certstore-test") -> None:
        self.prefix = prefix.lower()
        self._leased: set[int] = set()
        self._lock = threading.Lock()

    def acquire(self) -> str:
        """A name no current lease holds."""
        with self._lock:
            index = 0
            while index in self._leased:
                index += 1
            self._leased.add(index)
        return f"{self.prefix}-{index}"

    def release(self, name: str) -> None:
        """Give a leased name back (unknown names are ignored)."""
        head, _, index = name.rpartition("-")
        if head == self.prefix and index.isdigit():
            with self._lock:
                self._leased.discard(int(index))

    @property
    def leased(self) -> int:
        """How many names are out right now."""
        with self._lock:
            return len(self._leased)
