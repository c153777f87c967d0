"""``manage.py check_certificate_consistency``: the daily consistency check on the site's table.

Same engine, options, report and exit codes as ``certstore check-consistency``: the count of
rows marked migrated against the objects under the prefix (paginated listing), keys missing in
S3, orphans, rows in S3 but not marked, and a seeded sample of SHA-256 spot checks.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from certstore.contrib.django._commands import (
    EXIT_FAILURE,
    consistency_lines,
    consistency_report,
    exit_codes,
    percent,
    positive_int,
    rate,
    write_report,
)


class Command(BaseCommand):  # type: ignore[misc]
    help = (
        "Compare the site's migrated certificates with the objects in S3 (counts, missing, "
        "orphans, SHA-256 spot checks). Exit 0 on PASS, 1 on FAIL, 2 on bad options."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--spot-check-rate",
            type=rate,
            default=0.01,
            help="Share of migrated objects to download and hash (0 < R <= 1; default 0.01).",
        )
        parser.add_argument(
            "--page-size",
            type=positive_int,
            default=1000,
            help="Keys per S3 listing page and per query (1-1000, default 1000).",
        )
        parser.add_argument(
            "--threshold-percent",
            type=percent,
            default=None,
            help="FAIL when the mismatch rate is above this (default 0.5).",
        )
        parser.add_argument(
            "--seed", type=int, help="Seed of the spot checks (default: random, in the report)."
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
            raise CommandError(f"consistency check {status}", returncode=EXIT_FAILURE)

    def _run(self, options: dict[str, Any]) -> str:
        report = consistency_report(
            **{
                k: options[k]
                for k in ("spot_check_rate", "page_size", "threshold_percent", "seed", "workers")
            }
        )
        data = report.as_dict()
        write_report(options["output"], data)
        if options["as_json"]:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            self.stdout.write("\n".join(consistency_lines(report)))
        return str(report.status)
