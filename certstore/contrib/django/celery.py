"""Celery tasks for the daily checks (optional: Celery is not a dependency of certstore).

With Celery importable, :func:`check_certificate_consistency` and
:func:`validate_certificates_s3` are ``shared_task``\\ s (names ``certstore.*``) a beat schedule
can run daily; without it they are plain functions. Either way calling one runs it in-process
and returns the JSON report as a dict, so the runbook's step 5 works as written::

    from certstore.contrib.django.celery import check_certificate_consistency
    result = check_certificate_consistency()
    print(f"DB count: {result['db_count']}, S3 count: {result['s3_count']}")

A task never raises on FAIL: the report's ``status`` says PASS or FAIL, and the gauge
``cert_backfill_mismatch_rate_percent`` (which the runbook alerts on) is set either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def celery_available() -> bool:
    """Whether Celery can be imported here."""
    try:
        import celery  # noqa: F401
    except ImportError:
        return False
    return True


def _task(name: str) -> Callable[[F], F]:
    def wrap(func: F) -> F:
        try:
            from celery import shared_task
        except ImportError:
            return func
        return shared_task(name=name)(func)  # type: ignore[no-any-return]

    return wrap


@_task("certstore.check_certificate_consistency")
def check_certificate_consistency(
    spot_check_rate: float = 0.01,
    page_size: int = 1000,
    threshold_percent: float | None = None,
    seed: int | None = None,
    workers: int = 8,
) -> dict[str, Any]:
    """The consistency check on the site's table; returns its report (``db_count``...)."""
    from certstore.contrib.django._commands import consistency_report

    report = consistency_report(
        spot_check_rate=spot_check_rate,
        page_size=page_size,
        threshold_percent=threshold_percent,
        seed=seed,
        workers=workers,
    )
    return dict(report.as_dict())


@_task("certstore.validate_certificates_s3")
def validate_certificates_s3(
    sample_rate: float = 0.01,
    tournament_id: int | None = None,
    repair: bool = False,
    threshold_percent: float | None = None,
    seed: int | None = None,
    workers: int = 8,
) -> dict[str, Any]:
    """The sampled integrity validation (optionally with repair); returns its report."""
    from certstore.contrib.django._commands import validation_run

    run = validation_run(
        sample_rate=sample_rate,
        tournament_id=tournament_id,
        repair=repair,
        threshold_percent=threshold_percent,
        seed=seed,
        workers=workers,
    )
    return dict(run.as_dict())


__all__ = ["celery_available", "check_certificate_consistency", "validate_certificates_s3"]
