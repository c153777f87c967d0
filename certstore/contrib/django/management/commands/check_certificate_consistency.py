"""``manage.py check_certificate_consistency``: the daily consistency check on the site's table.

Same engine, options, report and exit codes as ``certstore check-consistency``: the count of
rows marked migrated against the objects under the prefix (paginated listing), keys missing in
S3, orphans, rows in S3 but not marked, and a seeded sample of SHA-256 spot checks.
"""

from __future__ import annotations

from django.core.management.base import CommandParser

from certstore.contrib.django._commands import ReportCommand, positive_int
from certstore.jobs import run_consistency
from certstore.reports import consistency_text


class Command(ReportCommand):
    help = (
        "Compare the site's migrated certificates with the objects in S3 (counts, missing, "
        "orphans, SHA-256 spot checks). Exit 0 on PASS, 1 on FAIL, 2 on bad options."
    )
    job = run_consistency
    render = consistency_text
    what = "consistency check"
    rate_option = "--spot-check-rate"
    seed_help = "Seed of the spot checks (default: random, in the report)."

    def add_job_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--page-size",
            type=positive_int,
            default=1000,
            help="Keys per S3 listing page and per query (1-1000, default 1000).",
        )
