"""The runs behind ``certstore backfill/validate/check-consistency`` and the Django commands.

Both front ends are thin wrappers over these functions: they parse their options, name a
:class:`Site` (where the settings and the catalog come from) and print the result with
:mod:`certstore.reports`. Options are checked here, before the site's settings are read, so a
bad value fails the same way from the CLI, ``manage.py`` and a Celery task. Heavy imports
(SQLAlchemy, boto3, the upload engines) happen inside the functions: importing this module
keeps a CLI start fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from certstore.config import Settings
from certstore.errors import ConfigError

if TYPE_CHECKING:
    from certstore._progress import Progress
    from certstore.backfill import BackfillSummary
    from certstore.catalog import Selection
    from certstore.consistency import ConsistencyReport
    from certstore.metrics import Metrics
    from certstore.verify import ValidationRun

#: The message of a real backfill (or a repair) while ``CERT_S3_BACKFILL_ENABLED`` is off.
BACKFILL_FLAG_OFF = (
    "CERT_S3_BACKFILL_ENABLED is not true: a real backfill refuses to run. Set "
    "CERT_S3_BACKFILL_ENABLED=true for the migration window, or use --dry-run"
)
REPAIR_FLAG_OFF = "--repair writes to S3 and needs CERT_S3_BACKFILL_ENABLED=true"


@dataclass(frozen=True)
class Site:
    """Where a run reads its settings and catalog.

    ``settings`` is called once per run, after the options are checked; ``open_catalog``
    gets those settings and ``write`` (whether the run writes to it: an older schema may then be
    upgraded; a catalog is never created here) and returns a catalog that is also a context
    manager.
    """

    settings: Callable[[], Settings]
    open_catalog: Callable[..., Any]

    @classmethod
    def from_env(cls, media_root: str | None = None, catalog_url: str | None = None) -> Site:
        """The standalone site: settings from the environment (``--media-root`` and
        ``--catalog`` override theirs), the SQL catalog at ``catalog_url``."""
        overrides: dict[str, Any] = {}
        if media_root:
            overrides["media_root"] = media_root
        if catalog_url:
            overrides["catalog_url"] = catalog_url

        def open_catalog(settings: Settings, *, write: bool = False) -> Any:
            from certstore.catalog import Catalog

            return Catalog(settings.catalog_url, create=False, upgrade=write)

        return cls(lambda: Settings.from_env(**overrides), open_catalog)


def job_options(job: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` (e.g. Django's parsed options) that ``job`` takes by name."""
    import inspect

    names = inspect.signature(job).parameters
    return {name: value for name, value in options.items() if name in names and name != "site"}


def _check_range(option: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(
            f"{option} {value} must be from {low} to {high}", variable=option, value=value
        )


def _sampling(seed: int | None, threshold_percent: float | None, workers: int) -> dict[str, Any]:
    """The keyword arguments both sampling checks take: the seed (random when not given, and
    recorded in the report), the threshold (certstore.verify's default), workers, metrics."""
    from certstore.metrics import default_metrics
    from certstore.verify import DEFAULT_THRESHOLD_PERCENT

    return {
        "seed": seed if seed is not None else secrets.randbelow(2**31),
        "threshold_percent": (
            DEFAULT_THRESHOLD_PERCENT if threshold_percent is None else threshold_percent
        ),
        "workers": workers,
        "metrics": default_metrics(),
    }


#: Why a backfill or a repair never runs in phase 3.
S3_ONLY_REFUSAL = (
    "CERT_S3_ONLY is on: S3 is authoritative and certificates saved since phase 3 began exist "
    "only there, so the local copies may be older; {what} would overwrite newer certificates "
    "in S3 with them. Run it before entering phase 3 (or after rolling back, once the "
    "certificates saved in phase 3 are back in the media root)"
)


def _require_backfill_flag(settings: Settings, message: str) -> None:
    flags = settings.flag_source().current()
    if flags.s3_only:
        what = "a repair" if message == REPAIR_FLAG_OFF else "a backfill"
        raise ConfigError(S3_ONLY_REFUSAL.format(what=what), variable="CERT_S3_ONLY")
    if flags.backfill_enabled:
        return
    from certstore import config

    where = config.resolve(settings.env)["CERT_S3_BACKFILL_ENABLED"]
    if where.source == config.SOURCE_FLAGS_FILE:
        # The flags file overrides the environment: "set CERT_S3_BACKFILL_ENABLED=true" would
        # send the operator to change a variable that is already true, or cannot win.
        path = config.resolve(settings.env)["CERTSTORE_FLAGS_FILE"].value
        message = (
            f"CERT_S3_BACKFILL_ENABLED is false in the flags file {path} "
            "(CERTSTORE_FLAGS_FILE), which overrides the environment: set it to true there for "
            "the migration window" + (", or use --dry-run" if message == BACKFILL_FLAG_OFF else "")
        )
    raise ConfigError(message, variable="CERT_S3_BACKFILL_ENABLED")


def _may_backfill(flags: Any) -> bool:
    """A running backfill goes on while its flag is on and phase 3 has not begun."""
    return bool(flags.backfill_enabled and not flags.s3_only)


def _require_media_root(settings: Settings, why: str) -> None:
    """Refuse a media root that is not a folder: an unmounted volume would otherwise turn every
    row into ``local_missing`` (and, in a repair, clear the marks of rows it could have fixed)."""
    from pathlib import Path

    root = Path(settings.media_root)
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(
            f"media root {root} {state}: {why} (set CERTSTORE_MEDIA_ROOT or --media-root)",
            variable="CERTSTORE_MEDIA_ROOT",
            value=str(root),
        )


def run_consistency(
    site: Site,
    spot_check_rate: float = 0.01,
    page_size: int = 1000,
    threshold_percent: float | None = None,
    seed: int | None = None,
    workers: int = 8,
) -> ConsistencyReport:
    """The consistency check (counts, missing keys, orphans, seeded SHA-256 spot checks)."""
    from certstore.backends.s3 import S3Backend
    from certstore.consistency import check_consistency

    _check_range("--page-size", page_size, 1, 1000)
    _check_range("--workers", workers, 1, 256)
    settings = site.settings()
    s3 = S3Backend.from_settings(settings)
    with site.open_catalog(settings) as catalog:
        return check_consistency(
            catalog,
            s3,
            settings.media_root,
            page_size=page_size,
            spot_check_rate=spot_check_rate,
            **_sampling(seed, threshold_percent, workers),
        )


def run_validation(
    site: Site,
    sample_rate: float = 0.01,
    tournament_id: int | None = None,
    repair: bool = False,
    threshold_percent: float | None = None,
    seed: int | None = None,
    workers: int = 8,
) -> ValidationRun:
    """Validate a seeded sample; with ``repair``, re-upload what is wrong and validate again
    (``repair`` writes to S3, so it needs ``CERT_S3_BACKFILL_ENABLED``)."""
    from certstore.backends.s3 import S3Backend
    from certstore.catalog import Selection
    from certstore.verify import validate_and_repair

    _check_range("--workers", workers, 1, 256)
    settings = site.settings()
    if repair:
        _require_backfill_flag(settings, REPAIR_FLAG_OFF)
        _require_media_root(settings, "--repair re-uploads from the local copies")
    s3 = S3Backend.from_settings(settings)
    # one HeadBucket: a dead endpoint or a missing bucket is one clear line, not one
    # s3_error per sampled object
    s3.check_bucket()
    uploader = None
    with site.open_catalog(settings, write=repair) as catalog:
        try:
            if repair:
                from certstore.transfer import make_uploader

                uploader = make_uploader(
                    settings, workers=workers, engine="boto3", existing="replace"
                )
            return validate_and_repair(
                catalog,
                s3,
                settings.media_root,
                selection=Selection(tournament_id=tournament_id),
                sample_rate=sample_rate,
                uploader=uploader,
                **_sampling(seed, threshold_percent, workers),
            )
        finally:
            if uploader is not None:
                uploader.close()


@dataclass(frozen=True)
class BackfillRequest:
    """A backfill's options as the CLI and ``manage.py`` take them (names match the flags)."""

    dry_run: bool = False
    limit: int | None = None
    batch_size: int = 500
    start_id: int | None = None
    end_id: int | None = None
    resume: bool = False
    resume_token: str | None = None
    tournament_id: int | None = None
    shard: str | None = None
    verify_hash: bool = True
    verify_method: str = "etag"
    workers: int = 16
    engine: str = "auto"
    max_consecutive_errors: int = 100

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BackfillRequest:
        """The request out of parsed options (entries that are not backfill options ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})

    def check(self) -> None:
        """Reject contradictory or out-of-range options before anything is read."""
        if self.workers > 512:
            raise ConfigError("--workers must be at most 512", variable="--workers")
        if self.resume and self.resume_token:
            raise ConfigError("use --resume or --resume-token, not both", variable="--resume")
        from certstore.backfill import MAX_BATCH_SIZE

        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(
                f"--batch-size {self.batch_size} must be from 1 to {MAX_BATCH_SIZE}",
                variable="--batch-size",
                value=self.batch_size,
            )
        if self.resume_token is not None:
            from certstore.resume import ResumeToken

            ResumeToken.decode(self.resume_token).check_usable(dry_run=self.dry_run)

    def selection(self) -> Selection:
        """The run's selection: from the options, or from the resume token when none are
        given (a token and explicit filters must agree)."""
        from certstore.catalog import Selection, parse_shard
        from certstore.resume import ResumeToken

        given = (self.tournament_id, self.shard, self.start_id, self.end_id)
        selection = Selection(
            tournament_id=self.tournament_id,
            shard=parse_shard(self.shard) if self.shard else None,
            start_id=self.start_id,
            end_id=self.end_id,
        )
        if self.resume_token is None:
            return selection
        parsed = ResumeToken.decode(self.resume_token)
        if all(v is None for v in given):
            return Selection.from_description(parsed.filters)
        parsed.check_matches(selection)
        return selection


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, notify: Callable[[str], None]) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (finish in-flight work, checkpoint); a second one aborts.

    Outside the main thread (where signal handlers cannot be set) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    # Signals counted here, not read off ``stop``: the run may have set ``stop`` itself (the
    # backfill's --max-consecutive-errors), and the operator's first Ctrl-C must still be the
    # graceful one.
    received: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if received:
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        received.append(signum)
        notify(
            f"certstore: {signal.Signals(signum).name} received: finishing uploads in "
            "flight, then writing the checkpoint (send it again to abort)"
        )
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_backfill(
    site: Site,
    request: BackfillRequest,
    *,
    progress: Progress | None = None,
    notify: Callable[[str], None],
    metrics: Metrics | None = None,
) -> BackfillSummary:
    """Copy the site's pending certificates to S3, each verified before it is marked migrated.

    A real run needs ``CERT_S3_BACKFILL_ENABLED``; a dry run needs no flag and sends no S3
    request. SIGINT/SIGTERM stop it cleanly (``notify`` gets one line); the summary then says
    ``interrupted`` and carries the resume token. ``metrics`` receives
    ``cert.backfill.objects`` and the engine's events (default: the process-wide
    :func:`~certstore.metrics.default_metrics`, whose Prometheus registry a web process or a
    Django site exposes).
    """
    from certstore.backfill import Backfill, BackfillOptions, start_position

    request.check()
    settings = site.settings()
    if not request.dry_run:
        _require_backfill_flag(settings, BACKFILL_FLAG_OFF)
    _require_media_root(settings, "the backfill reads every certificate from it")
    selection = request.selection()
    catalog = site.open_catalog(settings, write=not request.dry_run)
    uploader = None
    try:
        position, source = start_position(
            catalog,
            selection,
            resume=request.resume,
            token=request.resume_token,
            dry_run=request.dry_run,
        )
        options = BackfillOptions(
            selection=selection,
            position=position,
            limit=request.limit,
            batch_size=request.batch_size,
            dry_run=request.dry_run,
            verify_hash=request.verify_hash,
            verify_method=request.verify_method,
            started_from=source,
            max_consecutive_errors=request.max_consecutive_errors,
        )
        run_metrics = None  # a dry run emits nothing
        if not request.dry_run:
            from certstore.transfer import make_uploader

            if metrics is None:
                from certstore.metrics import default_metrics

                metrics = default_metrics()
            run_metrics = metrics
            uploader = make_uploader(
                settings, workers=request.workers, engine=request.engine, metrics=run_metrics
            )
            # one HeadBucket on the uploader's own client: a dead endpoint or a missing
            # bucket is one clear line before any work starts (the finally closes it)
            uploader.check_bucket()
        stop = threading.Event()
        flags = settings.flag_source()
        if not request.dry_run:
            flags.current()  # read now (it said yes above): a bad edit later keeps this
        engine = Backfill(
            catalog,
            settings.media_root,
            uploader=uploader,
            metrics=run_metrics,
            progress=progress,
            stop=stop,
            # the runbook's rollback is one edit of the flags file: a running backfill too
            allowed=None if request.dry_run else (lambda: _may_backfill(flags.current())),
        )
        with stop_on_signals(stop, notify):
            return engine.run(options)
    finally:
        if uploader is not None:
            uploader.close()
        catalog.close()


__all__ = [
    "BACKFILL_FLAG_OFF",
    "REPAIR_FLAG_OFF",
    "BackfillRequest",
    "Site",
    "job_options",
    "run_backfill",
    "run_consistency",
    "run_validation",
    "stop_on_signals",
]
