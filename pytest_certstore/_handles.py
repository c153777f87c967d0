"""The objects the fault and storage fixtures hand to a test (private: built by plugin.py)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pytest_certstore.botocore_faults import BotocoreFaults
from pytest_certstore.errors import FixtureConfigError
from pytest_certstore.faults import (
    LEVEL_SEND,
    Effect,
    FaultCall,
    FaultPlan,
    FaultRule,
)
from pytest_certstore.targets import S3Target

#: S3 fixtures by name, in the order ``cert_storage``/``s3_faults`` look for them.
S3_FIXTURES = ("s3", "s3_moto", "s3_server", "s3_live")


class _PlanFacade:
    """Rule editing and call inspection shared by ``s3_faults`` and ``s3_fault_proxy``."""

    plan: FaultPlan

    def add(self, rule: FaultRule) -> FaultRule:
        """Add a :class:`FaultRule`."""
        return self.plan.add(rule)

    def inject(
        self,
        effect: Effect | str,
        operations: str | tuple[str, ...] = "*",
        *,
        key: str = "*",
        bucket: str = "*",
        times: int | None = None,
        probability: float | None = None,
        name: str = "",
    ) -> FaultRule:
        """Add a rule from its parts: ``inject("SlowDown", "PutObject", times=2)``."""
        return self.plan.inject(
            effect,
            operations,
            key=key,
            bucket=bucket,
            times=times,
            probability=probability,
            name=name,
        )

    def apply_preset(self, name: str) -> list[FaultRule]:
        """Add the rules of a fault bucket preset (``"A"`` or ``"transient-5xx-on-save"``)."""
        from pytest_certstore.presets import preset

        rules = list(preset(name).rules)
        self.plan.extend(rules)
        return rules

    def clear(self) -> None:
        """Remove every rule and forget recorded calls."""
        self.plan.clear()

    @property
    def rules(self) -> list[FaultRule]:
        """The active rules."""
        return self.plan.rules

    @property
    def calls(self) -> list[FaultCall]:
        """Every attempt seen, faulted or not, in order."""
        return self.plan.calls

    def attempts(
        self, operation: str | None = None, *, key: str | None = None, level: str = LEVEL_SEND
    ) -> int:
        """How many attempts were made (optionally of one operation on one key)."""
        return self.plan.attempts(operation, key=key, level=level)

    def fired(self, rule: FaultRule) -> int:
        """How many times ``rule`` applied its effect."""
        return self.plan.fired(rule)


class InProcessFaults(_PlanFacade):
    """``s3_faults``: rules applied to boto3 clients in this process via botocore events."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._engine = BotocoreFaults(plan)

    def attach(self, client_or_target: Any) -> None:
        """Apply the rules to a client (or to an :class:`S3Target`'s client).

        The handlers are registered *first* on ``before-send``, so they run before any
        in-process answerer (the fake S3, moto) whatever the attach order.
        """
        if isinstance(client_or_target, S3Target):
            client_or_target = client_or_target.client
        self._engine.attach(client_or_target)

    def detach(self, client: Any) -> None:
        """Stop applying rules to ``client``."""
        self._engine.detach(client)

    def detach_all(self) -> None:
        """Detach from every client (the fixture does this after the test)."""
        self._engine.detach_all()

    @property
    def clients(self) -> list[Any]:
        """Clients the rules apply to."""
        return self._engine.clients


class ProxyFaults(_PlanFacade):
    """``s3_fault_proxy``: rules applied by an HTTP proxy in front of ``s3_server``.

    ``url`` is the endpoint a subprocess or non-boto3 client uses; ``client`` is a boto3 client
    already pointed at it; ``bucket`` is this test's bucket (the ``s3_server`` one).
    """

    def __init__(self, proxy: Any, target: S3Target, client: Any) -> None:
        self.proxy = proxy
        self.plan = proxy.plan
        self.target = target
        self.client = client

    @property
    def url(self) -> str:
        """The proxy's endpoint URL."""
        return str(self.proxy.url)

    @property
    def bucket(self) -> str:
        """This test's bucket."""
        return self.target.bucket

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a ``certstore`` subprocess that must go through the proxy."""
        return self.target.env(AWS_S3_ENDPOINT_URL=self.url, **extra)


class StorageFactory:
    """``cert_storage(dual_write=True, read_primary=False, s3=...)`` -> CertificateStorage.

    ``s3`` is an :class:`S3Target` or the name of an S3 fixture (default ``"s3"``, the fast
    fake). Every storage made in one test shares the test's media root, so a second storage
    with other flags sees the files the first one wrote. Faults from ``s3_faults`` apply when
    the test uses that fixture.
    """

    def __init__(self, request: Any, media_root: Path) -> None:
        self._request = request
        self.media_root = media_root
        self._numbers = itertools.count()

    def __call__(
        self,
        dual_write: bool = True,
        read_primary: bool = False,
        *,
        s3_only: bool = False,
        s3: S3Target | str = "s3",
        prefix: str = "certificates/",
        metrics: Any = None,
        media_url: str = "/media/",
    ) -> Any:
        from certstore.backends import LocalBackend, S3Backend
        from certstore.config import Flags
        from certstore.metrics import LogEmitter, Metrics
        from certstore.storage import CertificateStorage

        target = self.target(s3)
        if metrics is None:
            metrics = Metrics([LogEmitter()])
        if "s3_faults" in self._request.fixturenames:
            self._request.getfixturevalue("s3_faults").attach(target)
        self.media_root.mkdir(parents=True, exist_ok=True)
        local = LocalBackend(self.media_root, base_url=media_url)
        remote = S3Backend(
            target.client, target.bucket, prefix=target.prefix + prefix, metrics=metrics
        )
        flags = Flags(dual_write=dual_write, read_primary=read_primary, s3_only=s3_only)
        return CertificateStorage(local, remote, flags=flags, metrics=metrics)

    def target(self, s3: S3Target | str) -> S3Target:
        """Resolve ``s3=`` to a target."""
        if isinstance(s3, S3Target):
            return s3
        if s3 not in S3_FIXTURES:
            raise FixtureConfigError(
                f"cert_storage(s3={s3!r}): expected an S3 fixture value or one of "
                f"{', '.join(S3_FIXTURES)}",
                s3=s3,
            )
        value = self._request.getfixturevalue(s3)
        assert isinstance(value, S3Target)
        return value
