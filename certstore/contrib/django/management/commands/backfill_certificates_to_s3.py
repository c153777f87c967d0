"""``manage.py backfill_certificates_to_s3``: the runbook's command on the site's own table.

The same engine, options, output and exit codes as ``certstore backfill``
(:func:`certstore.jobs.run_backfill`); the catalog is the site's certificate model
(``settings.CERTSTORE_CATALOG``) and S3 and the media root are the certificate storage's.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from certstore.contrib.django._commands import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    SITE,
    exit_codes,
    non_negative_int,
    positive_int,
    seconds_between_lines,
    stderr_stream,
)
from certstore.jobs import BackfillRequest, run_backfill
from certstore.reports import backfill_exit_code, backfill_text, emit_report


class Command(BaseCommand):  # type: ignore[misc]
    help = (
        "Copy the site's certificates to S3; each is verified before migrated_to_s3_at is set. "
        "A real run needs CERT_S3_BACKFILL_ENABLED=true. Exit 0: no errors; 1: some objects "
        "failed; 2: bad options or the flag is off; 130: interrupted (resume token printed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check local files and report what would be migrated; no S3 "
            "request, no database write, no flag needed.",
        )
        parser.add_argument("--limit", type=positive_int, help="Process at most N pending rows.")
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=500,
            help="Rows read per query and marks written per transaction (default 500).",
        )
        parser.add_argument("--start-id", type=non_negative_int, help="First id of the range.")
        parser.add_argument("--end-id", type=non_negative_int, help="Last id of the range.")
        parser.add_argument(
            "--resume",
            action="store_true",
            help="Continue from the checkpoint stored for these filters.",
        )
        parser.add_argument("--resume-token", help="Continue from a printed resume token.")
        parser.add_argument(
            "--tournament-id", type=int, help="Only this tournament's certificates."
        )
        parser.add_argument(
            "--shard", metavar="K/N", help="Only ids with id %% N == K (N machines, one each)."
        )
        parser.add_argument(
            "--verify-hash",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Dry run: hash local files (off: existence only). Real runs "
            "always hash. Default on.",
        )
        parser.add_argument(
            "--verify-method",
            choices=["etag", "head"],
            default="etag",
            help="etag: the PUT response proves the copy (default); head: also HEAD each object.",
        )
        parser.add_argument(
            "--workers", type=positive_int, default=16, help="Concurrent uploads (default 16)."
        )
        parser.add_argument(
            "--max-consecutive-errors",
            type=non_negative_int,
            default=100,
            help="Stop taking new work after this many S3 failures in a row (S3 down); "
            "0: never. Default 100.",
        )
        parser.add_argument(
            "--engine",
            choices=["auto", "boto3", "obstore"],
            default="auto",
            help="Upload engine (auto: obstore when installed).",
        )
        parser.add_argument(
            "--progress-interval",
            type=seconds_between_lines,
            default=5.0,
            help="Seconds between progress lines when not on a terminal.",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the summary as JSON."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from certstore._progress import progress_for

        with exit_codes():
            summary = run_backfill(
                SITE,
                BackfillRequest.from_options(options),
                progress=progress_for(
                    stderr_stream(self.stderr),
                    self.stderr.write,
                    interval=options["progress_interval"],
                ),
                notify=self.stderr.write,
            )
            code = emit_report(
                summary,
                backfill_text,
                echo=self.stdout.write,
                as_json=options["as_json"],
                exit_code=backfill_exit_code,
            )
        if code == EXIT_INTERRUPTED:
            raise CommandError(
                "interrupted; resume with the RESUME_TOKEN printed above", returncode=code
            )
        if code != EXIT_OK:
            raise CommandError(
                "the backfill finished with errors (see the summary)", returncode=code
            )
