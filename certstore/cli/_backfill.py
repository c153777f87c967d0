"""``certstore backfill``: copy catalogued certificates to S3, verified and resumable.

A thin wrapper over :func:`certstore.jobs.run_backfill` and :mod:`certstore.reports`, which
``manage.py backfill_certificates_to_s3`` runs too: same checks, summary and exit codes.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from certstore.cli._types import FiniteFloatRange


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


@click.command("backfill")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check local files and report what would be migrated; no S3 request, no "
    "catalog write, no flag needed.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Process at most N pending rows.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Rows read per catalog query and marks written per transaction.",
)
@click.option("--start-id", type=click.IntRange(min=0), help="First catalog id of the range.")
@click.option("--end-id", type=click.IntRange(min=0), help="Last catalog id of the range.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the checkpoint stored in the catalog for these filters.",
)
@click.option("--resume-token", help="Continue from a printed resume token.")
@click.option("--tournament-id", type=int, help="Only this tournament's certificates.")
@click.option("--shard", metavar="K/N", help="Only ids with id % N == K (N machines, one each).")
@click.option(
    "--verify-hash/--no-verify-hash",
    default=True,
    show_default=True,
    help="Dry run: hash local files against the catalog (off: existence and size "
    "only). Real runs always hash.",
)
@click.option(
    "--verify-method",
    type=click.Choice(["etag", "head"]),
    default="etag",
    show_default=True,
    help="etag: the PUT response's ETag/checksum is the proof (no extra request); "
    "head: also HEAD each object.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 512),
    default=16,
    show_default=True,
    help="Concurrent uploads.",
)
@click.option(
    "--max-consecutive-errors",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Stop taking new work after this many S3 failures in a row, none succeeding "
    "between them (S3 down): the summary says so, exit 1, --resume continues. 0: never.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "boto3", "obstore"]),
    default="auto",
    show_default=True,
    help="Upload engine (auto: obstore when installed).",
)
@click.option(
    "--media-root",
    type=click.Path(file_okay=False),
    help="Local media root (default CERTSTORE_MEDIA_ROOT).",
)
@click.option("--catalog", "catalog_url", help="Catalog URL (default CERTSTORE_CATALOG_URL).")
@click.option(
    "--progress-interval",
    type=FiniteFloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between progress lines when not on a terminal.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def backfill_command(
    media_root: str | None,
    catalog_url: str | None,
    progress_interval: float,
    as_json: bool,
    **options: Any,
) -> int:
    """Copy catalogued certificates to S3; each is verified before it is marked migrated.

    A real run needs CERT_S3_BACKFILL_ENABLED=true. Exit 0: no errors; 1: some objects failed
    (see the summary); 2: bad options or the flag is off; 130: interrupted (resume token
    printed).
    """
    # Heavy imports (SQLAlchemy, the upload engines) only when a backfill really runs, so
    # every other command starts fast.
    from certstore.cli._app import heavy_imports

    with heavy_imports():
        import certstore.backfill  # noqa: F401  (imported before the heap is frozen)
        from certstore._progress import progress_for
        from certstore.jobs import BackfillRequest, Site, run_backfill
        from certstore.metrics import LogEmitter, Metrics
        from certstore.reports import (
            EXIT_INTERRUPTED,
            backfill_exit_code,
            backfill_text,
            emit_report,
        )

    summary = run_backfill(
        Site.from_env(media_root, catalog_url),
        BackfillRequest.from_options(options),
        progress=progress_for(sys.stderr, _echo_err, interval=progress_interval),
        notify=_echo_err,
        # A one-shot process has nobody to scrape a Prometheus registry (and importing
        # prometheus_client is ~10 % of the command's start-up): its metric events go to the
        # log as METRIC lines (-vv shows them; failures are logged at WARNING anyway).
        metrics=Metrics([LogEmitter()]),
    )
    code = emit_report(
        summary, backfill_text, echo=click.echo, as_json=as_json, exit_code=backfill_exit_code
    )
    if code == EXIT_INTERRUPTED:
        _echo_err(f"certstore: interrupted; resume with --resume-token {summary.resume_token}")
    return code


def register(group: click.Group) -> None:
    """Add ``backfill`` to ``group``."""
    group.add_command(backfill_command)
