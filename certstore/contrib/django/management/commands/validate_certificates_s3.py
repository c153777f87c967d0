"""``manage.py validate_certificates_s3``: the integrity validator on the site's own table.

Same engine, options, report (``--output``) and exit codes as ``certstore validate``: a seeded
sample of migrated certificates is downloaded and hashed; ``--repair`` re-uploads missing or
mismatched objects from the verified local copy and validates the same sample again.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from certstore.contrib.django._commands import (
    EXIT_FAILURE,
    exit_codes,
    percent,
    positive_int,
    rate,
    validation_lines,
    validation_run,
    write_report,
)


class Command(BaseCommand):  # type: ignore[misc]
    help = (
        "Download a seeded sample of migrated certificates and compare their SHA-256 with the "
        "site's records. Exit 0 on PASS, 1 on FAIL, 2 on bad options."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sample-rate",
            type=rate,
            default=0.01,
            help="Share of migrated objects to download and hash (0 < R <= 1; default 0.01).",
        )
        parser.add_argument(
            "--tournament-id", type=int, help="Only this tournament's certificates."
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="Re-upload missing or mismatched objects from their verified "
            "local copy, then validate again (needs "
            "CERT_S3_BACKFILL_ENABLED).",
        )
        parser.add_argument(
            "--threshold-percent",
            type=percent,
            default=None,
            help="FAIL when the mismatch rate is above this (default 0.5).",
        )
        parser.add_argument(
            "--seed", type=int, help="Seed of the sample (default: random, recorded in the report)."
        )
        parser.add_argument(
            "--workers", type=positive_int, default=8, help="Concurrent downloads (default 8)."
        )
        parser.add_argument("--output", help="Write the JSON report here.")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the JSON report."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with exit_codes():
            status = self._run(options)
        if status != "PASS":
            raise CommandError(f"validation {status}", returncode=EXIT_FAILURE)

    def _run(self, options: dict[str, Any]) -> str:
        run = validation_run(
            **{
                k: options[k]
                for k in (
                    "sample_rate",
                    "tournament_id",
                    "repair",
                    "threshold_percent",
                    "seed",
                    "workers",
                )
            }
        )
        data = run.as_dict()
        write_report(options["output"], data)
        if options["as_json"]:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            self.stdout.write("\n".join(validation_lines(run)))
        return str(run.status)
