"""``certstore rehearse``: the cutover rehearsal with a Go/No-Go verdict (exit 0 GO, 1 NO-GO)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from certstore.cli._app import EXIT_FAILURE, EXIT_OK
from certstore.cli._types import FiniteFloatRange


class _Bar:
    """One rich progress task per long phase."""

    def __init__(self, progress: Any, label: str, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task(label, total=total)

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self._progress.advance(self._task, items)

    def close(self) -> None:
        self._progress.update(self._task, visible=True)


@click.command("rehearse")
@click.option(
    "--count",
    type=click.IntRange(1, 1_000_000),
    default=500,
    show_default=True,
    help="Synthetic certificates to push through the cutover.",
)
@click.option(
    "--size-kb",
    type=FiniteFloatRange(0, 256 * 1024),
    default=50.0,
    show_default=True,
    help="Mean certificate size in KiB (each varies ±20 %).",
)
@click.option(
    "--utf8-share",
    type=FiniteFloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Share of keys with UTF-8 names (Curaçao, 東京, Δ ...).",
)
@click.option(
    "--legacy-share",
    type=FiniteFloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Share saved in phase 0 (local only) for the backfill to migrate.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the names, sizes and injected faults.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Concurrent uploads of the backfill.",
)
@click.option(
    "--real-s3",
    is_flag=True,
    help="Rehearse on the configured S3 (AWS_* settings) instead of an embedded "
    "endpoint, under a unique prefix that is deleted afterwards.",
)
@click.option(
    "--bucket", help="The existing bucket for --real-s3 [default: AWS_STORAGE_BUCKET_NAME]."
)
@click.option(
    "--prefix",
    help="Key prefix [default: AWS_S3_KEY_PREFIX, certificates/]; with "
    "--real-s3 a unique rehearsal-... folder is added under it.",
)
@click.option(
    "--inject-faults",
    type=FiniteFloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="RATE",
    help="Answer this share of S3 requests with 503 SlowDown "
    "(botocore retries them as it would real ones).",
)
@click.option(
    "--inject-latency-ms",
    type=FiniteFloatRange(0, 60_000),
    default=0.0,
    show_default=True,
    metavar="MS",
    help="Add this delay to every S3 request.",
)
@click.option(
    "--thresholds",
    "thresholds_path",
    type=click.Path(dir_okay=False),
    help="TOML file overriding Go/No-Go thresholds (see docs/examples/go-no-go.toml).",
)
@click.option(
    "--apply-lifecycle/--no-apply-lifecycle",
    default=None,
    help="Put the lifecycle policy on the bucket before validating it [default: on "
    "for the embedded endpoint; off with --real-s3, where applying replaces the "
    "bucket's whole lifecycle configuration].",
)
@click.option("--skip-lifecycle", is_flag=True, help="Do not check the lifecycle (SKIP).")
@click.option(
    "--estimate-count",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    help="Objects to estimate the production migration time for.",
)
@click.option(
    "--time-limit",
    type=FiniteFloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Seconds after which the rehearsal stops (and says NO-GO).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Also write PATH.md and PATH.json (a .md/.json suffix is replaced).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the JSON report instead of the terminal report."
)
@click.option("--keep", is_flag=True, help="Keep the scratch folder (media root, catalog).")
@click.option("--no-progress", is_flag=True, help="No progress display.")
def rehearse_command(
    count: int,
    size_kb: float,
    utf8_share: float,
    legacy_share: float,
    seed: int,
    workers: int,
    real_s3: bool,
    bucket: str | None,
    prefix: str | None,
    inject_faults: float,
    inject_latency_ms: float,
    thresholds_path: str | None,
    apply_lifecycle: bool | None,
    skip_lifecycle: bool,
    estimate_count: int,
    time_limit: float,
    report_path: str | None,
    as_json: bool,
    keep: bool,
    no_progress: bool,
) -> int:
    """Rehearse the cutover end to end on synthetic certificates and print GO or NO-GO.

    Phase 0 local saves, dual-write saves, catalog import, verified backfill, consistency check,
    read-primary reads and presigned downloads (with a forced fallback), lifecycle apply and
    validate; then the Go/No-Go checklist. Exit 0 on GO, 1 on NO-GO.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from certstore.rehearsal import RehearsalOptions, Thresholds, load_thresholds, run_rehearsal
    from certstore.rehearsal._report import print_terminal, to_json, write_reports

    thresholds = load_thresholds(thresholds_path) if thresholds_path else Thresholds()
    options = RehearsalOptions(
        count=count,
        size=int(size_kb * 1024),
        utf8_share=utf8_share,
        legacy_share=legacy_share,
        seed=seed,
        workers=workers,
        real_s3=real_s3,
        bucket=bucket,
        prefix=prefix,
        inject_faults=inject_faults,
        inject_latency_ms=inject_latency_ms,
        apply_lifecycle=apply_lifecycle,
        skip_lifecycle=skip_lifecycle,
        estimate_count=estimate_count,
        time_limit_s=time_limit,
        keep=keep,
        thresholds=thresholds,
    )
    out = Console(width=None if sys.stdout.isatty() else 120, highlight=False)
    err = Console(stderr=True)
    with _sigterm_as_interrupt():
        if no_progress or as_json:
            result = run_rehearsal(options)
        else:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=False,
            ) as progress:
                result = run_rehearsal(
                    options, progress=lambda label, total: _Bar(progress, label, total)
                )
    if as_json:
        click.echo(to_json(result), nl=False)
    else:
        print_terminal(result, out)
    if report_path:
        md_path, json_path = write_reports(result, report_path)
        err.print(f"reports: {md_path} {json_path}")
    return EXIT_OK if result.go else EXIT_FAILURE


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the rehearsal the way Ctrl-C does, through its clean-up: objects written
    under the rehearsal prefix (on a real bucket: inside production's prefix), the embedded
    endpoint and the scratch folder. Python's default for SIGTERM is to die on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(group: click.Group) -> None:
    """Add ``rehearse`` to ``group``."""
    group.add_command(rehearse_command)
