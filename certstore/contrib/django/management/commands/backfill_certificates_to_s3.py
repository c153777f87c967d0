"""``manage.py backfill_certificates_to_s3``: the runbook's command on the site's own table.

The same engine, options, output and exit codes as ``certstore backfill``; the catalog is the
site's certificate model (``settings.CERTSTORE_CATALOG``) and S3 and the media root are the
certificate storage's.
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from certstore.backfill import Backfill, BackfillOptions, start_position
from certstore.config import FlagSource
from certstore.contrib.django._commands import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    exit_codes,
    non_negative_int,
    positive_int,
    site_catalog,
    site_settings,
    stderr_stream,
)
from certstore.errors import ConfigError


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
            "--engine",
            choices=["auto", "boto3", "obstore"],
            default="auto",
            help="Upload engine (auto: obstore when installed).",
        )
        parser.add_argument(
            "--progress-interval",
            type=float,
            default=5.0,
            help="Seconds between progress lines when not on a terminal.",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the summary as JSON."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with exit_codes():
            code = self._run(options)
        if code == EXIT_INTERRUPTED:
            raise CommandError(
                "interrupted; resume with the RESUME_TOKEN printed above",
                returncode=EXIT_INTERRUPTED,
            )
        if code:
            raise CommandError(
                "the backfill finished with errors (see the summary)", returncode=EXIT_FAILURE
            )

    def _run(self, options: dict[str, Any]) -> int:
        from certstore._progress import progress_for
        from certstore.cli._backfill import build_selection, format_summary, stop_on_signals

        if options["workers"] > 512:
            raise ConfigError("--workers must be at most 512", variable="--workers")
        dry_run = options["dry_run"]
        resume, token = options["resume"], options["resume_token"]
        if resume and token:
            raise ConfigError("use --resume or --resume-token, not both", variable="--resume")
        settings = site_settings()
        if not dry_run and not FlagSource(settings.env).current().backfill_enabled:
            raise ConfigError(
                "CERT_S3_BACKFILL_ENABLED is not true: a real backfill refuses to run. Set "
                "CERT_S3_BACKFILL_ENABLED=true for the migration window, or use --dry-run",
                variable="CERT_S3_BACKFILL_ENABLED",
            )
        selection = build_selection(
            options["tournament_id"],
            options["shard"],
            options["start_id"],
            options["end_id"],
            token,
        )
        catalog = site_catalog(settings)
        uploader = None
        try:
            position, source = start_position(catalog, selection, resume=resume, token=token)
            run_options = BackfillOptions(
                selection=selection,
                position=position,
                limit=options["limit"],
                batch_size=options["batch_size"],
                dry_run=dry_run,
                verify_hash=options["verify_hash"],
                verify_method=options["verify_method"],
                started_from=source,
            )
            metrics = None
            if not dry_run:
                from certstore.backends.s3 import S3Backend
                from certstore.metrics import default_metrics
                from certstore.transfer import make_uploader

                metrics = default_metrics()
                S3Backend.from_settings(settings).check_bucket()
                uploader = make_uploader(
                    settings, workers=options["workers"], engine=options["engine"], metrics=metrics
                )
            stop = threading.Event()
            progress = progress_for(
                stderr_stream(self.stderr), self.stderr.write, interval=options["progress_interval"]
            )
            engine = Backfill(
                catalog,
                settings.media_root,
                uploader=uploader,
                metrics=metrics,
                progress=progress,
                stop=stop,
            )
            with stop_on_signals(stop):
                summary = engine.run(run_options)
        finally:
            if uploader is not None:
                uploader.close()
            catalog.close()
        if options["as_json"]:
            self.stdout.write(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
        else:
            self.stdout.write(format_summary(summary))
        if summary.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILURE if summary.error_count else 0
