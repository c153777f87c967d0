"""What the management commands share: the site's settings and catalog, and exit codes.

The commands are thin wrappers over the engine the ``certstore`` CLI runs, and they keep its
exit codes: 0 done, 1 some objects failed or a check failed, 2 bad options or configuration
(including a backfill with ``CERT_S3_BACKFILL_ENABLED`` off), 3 not found, 130 interrupted.
Django reports a non-zero exit as ``CommandError`` with that ``returncode`` (``manage.py`` exits
with it; ``call_command`` raises it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from django.core.management.base import CommandError, OutputWrapper

from certstore.config import Settings
from certstore.errors import CertstoreError, ConfigError, InvalidKeyError, ObjectNotFoundError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130


def site_settings() -> Settings:
    """certstore settings of the site: the certificate storage's, else Django's AWS_* settings.

    The backfill may run before ``STORAGES`` is switched to ``CertificateS3Storage``; then the
    bucket comes from the django-storages setting names and the media root from ``MEDIA_ROOT``.
    """
    from certstore.contrib.django.settings import storage_config
    from certstore.contrib.django.storage import CertificateS3Storage, certificate_storage

    storage = certificate_storage()
    if isinstance(storage, CertificateS3Storage):
        return storage.config.settings
    return storage_config({}, where="settings").settings


def site_catalog(settings: Settings) -> Any:
    """The catalog over the site's certificate model (``settings.CERTSTORE_CATALOG``)."""
    from certstore.contrib.django.catalog import DjangoCatalog

    return DjangoCatalog.from_settings(media_root=settings.media_root)


def stderr_stream(wrapper: OutputWrapper) -> Any:
    """The raw stream under Django's ``OutputWrapper`` (a progress bar needs unwrapped writes)."""
    return getattr(wrapper, "_out", sys.stderr)


@contextlib.contextmanager
def exit_codes() -> Iterator[None]:
    """Turn certstore's errors into ``CommandError`` with the CLI's exit codes."""
    try:
        yield
    except (ConfigError, InvalidKeyError) as err:
        raise CommandError(str(err), returncode=EXIT_USAGE) from err
    except ObjectNotFoundError as err:
        raise CommandError(f"not found: {err}", returncode=EXIT_NOT_FOUND) from err
    except CertstoreError as err:
        raise CommandError(str(err), returncode=EXIT_FAILURE) from err
    except KeyboardInterrupt as err:
        raise CommandError("interrupted", returncode=EXIT_INTERRUPTED) from err


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the CLI's ``IntRange(min=1)``)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is below the minimum {low}")
    return value


def write_report(path: str | None, data: dict[str, Any]) -> None:
    """Write the JSON report atomically (``--output``), as the CLI does."""
    if not path:
        return
    import json
    import os
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(target.name + ".tmp")
    temp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, target)


def validation_lines(run: Any) -> list[str]:
    """The text ``certstore validate`` prints for a :class:`certstore.verify.ValidationRun`."""
    lines: list[str] = []
    passes = [run.first] + ([run.second] if run.second is not None else [])
    for number, report in enumerate(passes, 1):
        label = f"pass {number}: " if len(passes) > 1 else ""
        lines.append(
            f"{label}{report.status}: {report.mismatches} mismatch(es) in "
            f"{report.total_sampled} sampled of {report.population} migrated "
            f"({report.mismatch_rate_percent:.3f}%, threshold "
            f"{report.threshold_percent}%), seed {report.seed}"
        )
        for item in report.mismatch_details[:20]:
            lines.append(
                f"  - id={item.id} {item.key}: {item.reason} (catalog "
                f"{item.catalog_sha256[:12]}, s3 {(item.s3_sha256 or '-')[:12]}, "
                f"local {(item.local_sha256 or '-')[:12]})"
            )
    if run.repair is not None:
        lines.append(
            f"repair: {len(run.repair.repaired)} repaired, {len(run.repair.failed)} failed"
        )
        for item in run.repair.failed:
            lines.append(
                f"  - id={item['id']} {item['key']}: {item['reason']}: {item.get('detail', '')}"
            )
    lines.append(f"status: {run.status}")
    return lines


def consistency_lines(report: Any) -> list[str]:
    """The text ``certstore check-consistency`` prints for a ``ConsistencyReport``."""
    lines = [
        f"DB count (migrated): {report.catalog_migrated}, S3 count: "
        f"{report.s3_objects} (matched {report.matched})",
        f"missing in S3: {report.missing_count}, size mismatches: "
        f"{report.size_mismatch_count}, orphans in S3: {report.orphan_count}, "
        f"in S3 but not marked migrated: {report.unmarked_count}",
        f"spot checks: {report.spot_checked} (seed {report.seed}), mismatches: "
        f"{len(report.spot_mismatches)}",
    ]
    lines += [f"  missing: {key}" for key in report.missing_in_s3[:20]]
    lines += [f"  orphan: {key}" for key in report.orphans[:20]]
    lines += [
        f"  spot: id={item.id} {item.key}: {item.reason}" for item in report.spot_mismatches[:20]
    ]
    lines.append(
        f"status: {report.status} ({report.mismatch_rate_percent:.3f}%, threshold "
        f"{report.threshold_percent}%)"
    )
    return lines


def rate(text: str) -> float:
    """argparse type: a sample rate ``0 < R <= 1`` (certstore.verify's rule and message)."""
    import argparse

    from certstore.verify import check_sample_rate

    try:
        value = float(text)
        check_sample_rate(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def percent(text: str) -> float:
    """argparse type: a threshold in percent, 0 to 100."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 100")
    return value


def consistency_report(
    *,
    spot_check_rate: float = 0.01,
    page_size: int = 1000,
    threshold_percent: float | None = None,
    seed: int | None = None,
    workers: int = 8,
) -> Any:
    """Run the consistency check on the site's table and bucket (a ``ConsistencyReport``)."""
    import secrets

    from certstore.backends.s3 import S3Backend
    from certstore.consistency import check_consistency
    from certstore.metrics import default_metrics
    from certstore.verify import DEFAULT_THRESHOLD_PERCENT

    if not 1 <= page_size <= 1000:
        raise ConfigError(
            f"--page-size {page_size} must be from 1 to 1000",
            variable="--page-size",
            value=page_size,
        )
    if not 1 <= workers <= 256:
        raise ConfigError(
            f"--workers {workers} must be from 1 to 256", variable="--workers", value=workers
        )
    settings = site_settings()
    s3 = S3Backend.from_settings(settings)
    with site_catalog(settings) as catalog:
        return check_consistency(
            catalog,
            s3,
            settings.media_root,
            spot_check_rate=spot_check_rate,
            seed=seed if seed is not None else secrets.randbelow(2**31),
            threshold_percent=(
                DEFAULT_THRESHOLD_PERCENT if threshold_percent is None else threshold_percent
            ),
            workers=workers,
            page_size=page_size,
            metrics=default_metrics(),
        )


def validation_run(
    *,
    sample_rate: float = 0.01,
    tournament_id: int | None = None,
    repair: bool = False,
    threshold_percent: float | None = None,
    seed: int | None = None,
    workers: int = 8,
) -> Any:
    """Validate (and optionally repair) on the site's table and bucket (a ``ValidationRun``)."""
    import secrets

    from certstore.backends.s3 import S3Backend
    from certstore.catalog import Selection
    from certstore.config import FlagSource
    from certstore.metrics import default_metrics
    from certstore.verify import DEFAULT_THRESHOLD_PERCENT, validate_and_repair

    if not 1 <= workers <= 256:
        raise ConfigError(
            f"--workers {workers} must be from 1 to 256", variable="--workers", value=workers
        )
    settings = site_settings()
    if repair and not FlagSource(settings.env).current().backfill_enabled:
        raise ConfigError(
            "--repair writes to S3 and needs CERT_S3_BACKFILL_ENABLED=true",
            variable="CERT_S3_BACKFILL_ENABLED",
        )
    s3 = S3Backend.from_settings(settings)
    uploader = None
    with site_catalog(settings) as catalog:
        try:
            if repair:
                from certstore.transfer import make_uploader

                uploader = make_uploader(
                    settings, workers=workers, engine="boto3", existing="overwrite"
                )
            return validate_and_repair(
                catalog,
                s3,
                settings.media_root,
                sample_rate=sample_rate,
                seed=seed if seed is not None else secrets.randbelow(2**31),
                threshold_percent=(
                    DEFAULT_THRESHOLD_PERCENT if threshold_percent is None else threshold_percent
                ),
                workers=workers,
                selection=Selection(tournament_id=tournament_id),
                metrics=default_metrics(),
                uploader=uploader,
            )
        finally:
            if uploader is not None:
                uploader.close()
