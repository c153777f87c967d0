"""``certstore backfill``: copy catalogued certificates to S3, verified and resumable."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from certstore.config import FlagSource, Settings
from certstore.errors import ConfigError

if TYPE_CHECKING:
    from certstore.backfill import BackfillSummary
    from certstore.catalog import Selection

EXIT_OK, EXIT_FAILURE, EXIT_INTERRUPTED = 0, 1, 130


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (finish in-flight work, checkpoint); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        click.echo(
            f"certstore: {signal.Signals(signum).name} received: finishing uploads in "
            "flight, then writing the checkpoint (send it again to abort)",
            err=True,
        )
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def build_selection(
    tournament_id: int | None,
    shard: str | None,
    start_id: int | None,
    end_id: int | None,
    token: str | None,
) -> Selection:
    """The run's selection: from the options, or from the resume token when none are given."""
    from certstore.catalog import Selection, parse_shard
    from certstore.resume import ResumeToken

    explicit = any(v is not None for v in (tournament_id, shard, start_id, end_id))
    selection = Selection(
        tournament_id=tournament_id,
        shard=parse_shard(shard) if shard else None,
        start_id=start_id,
        end_id=end_id,
    )
    if token is None:
        return selection
    parsed = ResumeToken.decode(token)
    if not explicit:
        return Selection.from_description(parsed.filters)
    parsed.check_matches(selection)
    return selection


def format_summary(summary: BackfillSummary) -> str:
    """The human summary (the last line is ``RESUME_TOKEN <token>`` for scripts)."""
    title = "DRY-RUN" if summary.dry_run else "RUN"
    errors = ", ".join(f"{k}={v}" for k, v in sorted(summary.errors.items()))
    lines = [
        f"=== Certificate S3 Backfill ({title}) ===",
        f"Filters: {json.dumps(summary.filters, sort_keys=True)}",
        f"Started from: {summary.started_from} (after id {summary.start_position})",
        "",
        "=== Summary ===",
        f"Total found: {summary.found}",
    ]
    if summary.dry_run:
        lines.append(f"Would migrate: {summary.would_migrate}")
    else:
        lines.append(f"Migrated (verified): {summary.migrated}")
        lines.append(f"Skipped (already in S3, same SHA-256): {summary.skipped_existing}")
    lines += [
        f"Skipped (already migrated): {summary.skipped_already_migrated}",
        f"Errors: {summary.error_count}" + (f" ({errors})" if errors else ""),
    ]
    for detail in summary.error_details[:20]:
        lines.append(
            f"  - id={detail['id']} {detail['key']}: {detail['reason']}: {detail['detail']}"
        )
    if len(summary.error_details) > 20 or summary.error_count > len(summary.error_details):
        lines.append(
            f"  ... {summary.error_count - min(20, len(summary.error_details))} more (see --json)"
        )
    lines += [
        f"Bytes: {summary.bytes}",
        f"Duration: {summary.duration_s:.1f} s ({summary.objects_per_s:.1f} obj/s, "
        f"{summary.mb_per_s:.2f} MB/s)",
    ]
    if summary.interrupted:
        lines.append("Interrupted: yes (resume with the token below)")
    lines.append(f"RESUME_TOKEN {summary.resume_token}")
    return "\n".join(lines)


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
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between progress lines when not on a terminal.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def backfill_command(
    dry_run: bool,
    limit: int | None,
    batch_size: int,
    start_id: int | None,
    end_id: int | None,
    resume: bool,
    resume_token: str | None,
    tournament_id: int | None,
    shard: str | None,
    verify_hash: bool,
    verify_method: str,
    workers: int,
    engine: str,
    media_root: str | None,
    catalog_url: str | None,
    progress_interval: float,
    as_json: bool,
) -> int:
    """Copy catalogued certificates to S3; each is verified before it is marked migrated.

    A real run needs CERT_S3_BACKFILL_ENABLED=true. Exit 0: no errors; 1: some objects failed
    (see the summary); 2: bad options or the flag is off; 130: interrupted (resume token
    printed).
    """
    # Heavy imports (SQLAlchemy, the upload engines) only when a backfill really runs, so
    # every other command starts fast.
    from certstore._progress import progress_for
    from certstore.backfill import Backfill, BackfillOptions, start_position
    from certstore.catalog import Catalog

    if resume and resume_token:
        raise ConfigError("use --resume or --resume-token, not both", variable="--resume")
    if not dry_run and not FlagSource().current().backfill_enabled:
        raise ConfigError(
            "CERT_S3_BACKFILL_ENABLED is not true: a real backfill refuses to run. Set "
            "CERT_S3_BACKFILL_ENABLED=true for the migration window, or use --dry-run",
            variable="CERT_S3_BACKFILL_ENABLED",
        )
    overrides: dict[str, Any] = {}
    if media_root:
        overrides["media_root"] = media_root
    if catalog_url:
        overrides["catalog_url"] = catalog_url
    settings = Settings.from_env(**overrides)
    selection = build_selection(tournament_id, shard, start_id, end_id, resume_token)
    catalog = Catalog(settings.catalog_url, create=not dry_run)
    uploader = None
    try:
        position, source = start_position(catalog, selection, resume=resume, token=resume_token)
        options = BackfillOptions(
            selection=selection,
            position=position,
            limit=limit,
            batch_size=batch_size,
            dry_run=dry_run,
            verify_hash=verify_hash,
            verify_method=verify_method,
            started_from=source,
        )
        metrics = None
        if not dry_run:
            from certstore.metrics import default_metrics
            from certstore.transfer import make_uploader

            metrics = default_metrics()
            uploader = make_uploader(settings, workers=workers, engine=engine, metrics=metrics)
            # one HeadBucket on the uploader's own client: a dead endpoint or a missing
            # bucket is one clear line before any work starts (the finally closes it)
            uploader.check_bucket()
        stop = threading.Event()
        progress = progress_for(
            sys.stderr, lambda line: click.echo(line, err=True), interval=progress_interval
        )
        engine_ = Backfill(
            catalog,
            settings.media_root,
            uploader=uploader,
            metrics=metrics,
            progress=progress,
            stop=stop,
        )
        with stop_on_signals(stop):
            summary = engine_.run(options)
    finally:
        if uploader is not None:
            uploader.close()
        catalog.close()
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(format_summary(summary))
    if summary.interrupted:
        click.echo(
            f"certstore: interrupted; resume with --resume-token {summary.resume_token}", err=True
        )
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if summary.error_count else EXIT_OK


def register(group: click.Group) -> None:
    """Add ``backfill`` to ``group``."""
    group.add_command(backfill_command)
