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

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from certstore.jobs import run_consistency, run_validation

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


def _site_task(name: str, job: Callable[..., Any], doc: str) -> Callable[..., dict[str, Any]]:
    """A task running ``job`` on the site's table and bucket and returning its JSON report.

    It takes ``job``'s options (the management command's, by the same names and defaults),
    so they are declared once, in :mod:`certstore.jobs`.
    """

    def task(*args: Any, **kwargs: Any) -> dict[str, Any]:
        from certstore.contrib.django._commands import SITE

        return dict(job(SITE, *args, **kwargs).as_dict())

    signature = inspect.signature(job)
    task.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:], return_annotation="dict[str, Any]"
    )
    task.__name__ = task.__qualname__ = name.rpartition(".")[2]
    task.__doc__ = doc
    return _task(name)(task)


check_certificate_consistency = _site_task(
    "certstore.check_certificate_consistency",
    run_consistency,
    "The consistency check on the site's table; returns its report (``db_count``...).",
)
validate_certificates_s3 = _site_task(
    "certstore.validate_certificates_s3",
    run_validation,
    "The sampled integrity validation (optionally with repair); returns its report.",
)

__all__ = ["celery_available", "check_certificate_consistency", "validate_certificates_s3"]
