"""A tiny Locust scenario for the slo tests: three endpoints of the tests' own HTTP server.

``fast`` answers at once, ``slow`` after ``SLO_TINY_SLOW_MS`` (default 30) ms, ``fail`` with
HTTP 500. Every request goes to the loopback server the test started (``--host``).

The run is bounded by count as well as by ``-t``: after ``SLO_TINY_REQUESTS`` (default 300)
requests the users stop the runner. The count bound is what makes the sample counts reliable:
on a loaded machine Locust's ``-t`` timer can fire early (gevent's cached loop time).
"""

from __future__ import annotations

import os

import gevent
from locust import HttpUser, constant, task

SLOW_MS = int(os.environ.get("SLO_TINY_SLOW_MS", "30"))
MAX_REQUESTS = int(os.environ.get("SLO_TINY_REQUESTS", "300"))
_sent = [0]


class TinyUser(HttpUser):
    """Hits the three endpoints in a fixed 4:2:1 mix."""

    wait_time = constant(0.01)

    def _count(self) -> None:
        _sent[0] += 1
        if _sent[0] == MAX_REQUESTS:
            # From a greenlet of its own: quit() kills every user greenlet, this one included.
            gevent.spawn(self.environment.runner.quit)

    @task(4)
    def fast(self) -> None:
        self.client.get("/fast", name="fast")
        self._count()

    @task(2)
    def slow(self) -> None:
        self.client.get(f"/slow?ms={SLOW_MS}", name="slow")
        self._count()

    @task(1)
    def fail(self) -> None:
        self.client.get("/fail", name="fail")
        self._count()
