"""``manage.py validate_certificates_s3``: the integrity validator on the site's own table.

Same engine, options, report (``--output``) and exit codes as ``certstore validate``: a seeded
sample of migrated certificates is downloaded and hashed; ``--repair`` re-uploads missing or
mismatched objects from the verified local copy and validates the same sample again.
"""

from __future__ import annotations

from django.core.management.base import CommandParser

from certstore.contrib.django._commands import ReportCommand
from certstore.jobs import run_validation
from certstore.reports import validation_text


class Command(ReportCommand):
    help = (
        "Download a seeded sample of migrated certificates and compare their SHA-256 with the "
        "site's records. Exit 0 on PASS, 1 on FAIL, 2 on bad options."
    )
    job = run_validation
    render = validation_text
    what = "validation"
    rate_option = "--sample-rate"
    seed_help = "Seed of the sample (default: random, recorded in the report)."

    def add_job_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tournament-id", type=int, help="Only this tournament's certificates."
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="Re-upload missing or mismatched objects from their verified "
            "local copy, then validate again (needs CERT_S3_BACKFILL_ENABLED).",
        )
