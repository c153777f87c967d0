"""``GET /healthz``: is the local media root usable, and can S3 be reached?

503 only when the service cannot do its job: the local media root outside phase 3, S3 in
phase 3, flags it cannot resolve at all. In phases 1 and 2 an unreachable S3 is ``"degraded"``
with 200: every request is still served from the local copy (the runbook calls such an outage
harmless to users), and a load balancer that took every instance out for it would turn it into
a full outage. A flags file that became invalid after a good read is ``"degraded"`` too: the
service runs on its last good flags (see :class:`certstore.config.FlagSource`).

The S3 probe is one HeadBucket, run in a worker thread under a deadline: a hung endpoint makes
the probe answer "unhealthy" after ``timeout`` seconds instead of hanging the health check
(load balancers give up after a few seconds and would mark the whole instance dead for a slow
answer rather than a bad one). Probes share a small thread limiter of their own, so abandoned
probes against a hung endpoint can never use up the threads that serve downloads.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import anyio

from certstore.errors import CertstoreError
from certstore.storage import CertificateStorage

logger = logging.getLogger(__name__)

#: Default deadline of the S3 probe, in seconds.
DEFAULT_TIMEOUT = 2.0


@dataclass
class Health:
    """The outcome: overall status and one entry per check."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Checks whose failure does not stop the service (S3 while local is authoritative).
    optional: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        """True when every check the service needs passed (it can serve: HTTP 200)."""
        return all(check["ok"] for name, check in self.checks.items() if name not in self.optional)

    @property
    def status(self) -> str:
        """``ok``, ``degraded`` (serving, but an optional check failed) or ``fail``."""
        if not self.ok:
            return "fail"
        return "ok" if all(check["ok"] for check in self.checks.values()) else "degraded"

    def as_json(self, phase: str) -> dict[str, Any]:
        """The response body."""
        return {"status": self.status, "phase": phase, "checks": self.checks}


def check_local(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The media root must be a folder this process can read, write and enter."""
    if not os.path.isdir(root):
        return {"ok": False, "detail": "the local media root does not exist or is not a folder"}
    if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        return {"ok": False, "detail": "the local media root is not readable and writable"}
    return {"ok": True}


def _head_bucket(storage: CertificateStorage) -> None:
    check = getattr(storage.s3, "check_bucket", None)
    if check is not None:
        check()


class HealthChecker:
    """Runs the checks the current flags call for."""

    def __init__(self, storage: CertificateStorage, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.storage = storage
        self.timeout = timeout
        self._limiter: anyio.CapacityLimiter | None = None

    async def _check_s3(self) -> dict[str, Any]:
        if self.storage.s3 is None:
            return {"ok": False, "detail": "the flags need S3 but no bucket is configured"}
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(2)
        bucket = getattr(self.storage.s3, "bucket", None)
        try:
            with anyio.fail_after(self.timeout):
                await anyio.to_thread.run_sync(
                    _head_bucket, self.storage, abandon_on_cancel=True, limiter=self._limiter
                )
        except TimeoutError:
            return {
                "ok": False,
                "bucket": bucket,
                "detail": f"HeadBucket did not answer within {self.timeout:g} s",
            }
        except CertstoreError as err:
            logger.warning("health: S3 check failed: %s", err)
            return {"ok": False, "bucket": bucket, "detail": str(err)}
        return {"ok": True, "bucket": bucket}

    async def run(self) -> tuple[Health, str]:
        """Run the checks; returns the outcome and the phase the flags put the service in."""
        health = Health()
        try:
            flags = self.storage.flags()
        except CertstoreError as err:
            health.checks["flags"] = {"ok": False, "detail": str(err)}
            return health, "unknown"
        problem = self.storage.flags_problem
        if problem is not None:
            # Serving on the last good flags: degraded (an edit did not take effect), not down.
            health.checks["flags"] = {"ok": False, "detail": problem}
            health.optional.add("flags")
        if not flags.s3_only:
            local = self.storage.local
            root = getattr(local, "root", None)
            if root is None:
                health.checks["local"] = {"ok": False, "detail": "no local media root"}
            else:
                health.checks["local"] = check_local(root)
        if flags.s3_in_play:
            health.checks["s3"] = await self._check_s3()
            if not flags.s3_only:
                health.optional.add("s3")
        return health, flags.phase
