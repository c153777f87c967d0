"""What the management commands share: the site, option types, report printing, exit codes.

The commands are thin wrappers over :mod:`certstore.jobs` and :mod:`certstore.reports`, the
engine and report text the ``certstore`` CLI uses, and they keep its exit codes: 0 done, 1 some
objects failed or a check failed, 2 bad options or configuration (including a backfill with
``CERT_S3_BACKFILL_ENABLED`` off), 3 not found, 130 interrupted. Django reports a non-zero exit
as ``CommandError`` with that ``returncode`` (``manage.py`` exits with it; ``call_command``
raises it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from certstore.config import Settings
from certstore.errors import CertstoreError, ConfigError, InvalidKeyError, ObjectNotFoundError
from certstore.jobs import Site, job_options
from certstore.reports import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    check_output,
    emit_report,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "SITE",
    "ReportCommand",
    "exit_codes",
    "non_negative_int",
    "percent",
    "positive_int",
    "rate",
    "site_catalog",
    "site_settings",
    "stderr_stream",
]


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


def site_catalog(settings: Settings, *, write: bool = False) -> Any:
    """The catalog over the site's certificate model (``settings.CERTSTORE_CATALOG``).

    ``write`` needs nothing more: the site's migrations own the table.
    """
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


def seconds_between_lines(text: str) -> float:
    """argparse type: seconds from 0.1 to 3600 (the CLI's ``FloatRange(0.1, 3600)``)."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.1 <= value <= 3600:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected seconds from 0.1 to 3600, got {text!r}")
    return value


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


#: The Django site: the certificate storage's settings, the catalog over the site's model.
SITE = Site(site_settings, site_catalog)


class ReportCommand(BaseCommand):  # type: ignore[misc]
    """A check command: run ``job`` on :data:`SITE`, print its report as the CLI does
    (``render`` for text, ``--json``, ``--output``), exit 0 on PASS and 1 on FAIL."""

    job: ClassVar[Callable[..., Any]]
    render: ClassVar[Callable[[Any], str]]
    #: What failed, in the ``CommandError`` message (``"validation"`` -> "validation FAIL").
    what: ClassVar[str]
    #: The sample-rate option (the CLI's name for it in this command) and ``--seed``'s help.
    rate_option: ClassVar[str]
    seed_help: ClassVar[str]

    def add_arguments(self, parser: CommandParser) -> None:
        """The CLI's options, in its order: the rate, the command's own, then the common ones."""
        parser.add_argument(
            self.rate_option,
            type=rate,
            default=0.01,
            help="Share of migrated objects to download and hash (0 < R <= 1; default 0.01).",
        )
        self.add_job_arguments(parser)
        parser.add_argument(
            "--threshold-percent",
            type=percent,
            default=None,
            help="FAIL when the mismatch rate is above this (default 0.5).",
        )
        parser.add_argument("--seed", type=int, help=self.seed_help)
        parser.add_argument(
            "--workers", type=positive_int, default=8, help="Concurrent downloads (default 8)."
        )
        parser.add_argument("--output", help="Write the JSON report here.")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the JSON report."
        )

    def add_job_arguments(self, parser: CommandParser) -> None:
        """This command's own options (none by default)."""

    def handle(self, *args: Any, **options: Any) -> None:
        job = type(self).job
        with exit_codes():
            check_output(options["output"])
            report = job(SITE, **job_options(job, options))
            code = emit_report(
                report,
                type(self).render,
                echo=self.stdout.write,
                as_json=options["as_json"],
                output=options["output"],
            )
        if code != EXIT_OK:
            raise CommandError(f"{self.what} {report.status}", returncode=code)
