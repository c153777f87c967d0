"""The backfill: copy every catalogued certificate from the media root to S3, verified.

A row is marked migrated (``migrated_to_s3_at``, ``verified_at``, ``s3_etag``) only after the
uploader proved the S3 copy holds the catalogued bytes (the server-computed ETag or checksum of
the PUT, or a HEAD with ``verify_method="head"``; or an object already there with the same
SHA-256). Every other outcome is an error with a reason (``local_missing``, ``local_changed``,
``s3_error``, ``verify_failed``) and the row stays pending.

The run reads the catalog with keyset pagination (pending rows only, in id order) and feeds the
uploader lazily, so concurrency never stalls at a batch boundary and memory stays flat. Marks are
written in one transaction per ``batch_size`` results (or every ``flush_seconds``) together with
the run's checkpoint. The checkpoint is the highest id below which every selected row is
migrated: it never moves past a row that failed or is still in flight, so resuming (from the
checkpoint or a resume token) never skips work; a crash at any point loses at most the marks of
uploads that finished since the last flush, and those are found again on resume (the uploader
sees the object already in S3 with the same SHA-256 and does not upload it twice).

A stop request (``stop`` event; the CLI sets it on SIGINT/SIGTERM) stops feeding new items; items
already handed to the uploader finish, their marks and the checkpoint are written, and the summary
carries the resume token.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from certstore._progress import NullProgress, Progress
from certstore._transfer_common import (
    LocalFileProblem,
    check_sha256,
    check_size,
    file_sha256,
    local_size,
)
from certstore.catalog import (
    Catalog,
    CertificateRecord,
    Checkpoint,
    Mark,
    Selection,
    utcnow,
)
from certstore.errors import ConfigError, InvalidKeyError
from certstore.keys import MediaRoot
from certstore.metrics import Metrics
from certstore.resume import ResumeToken
from certstore.transfer import (
    REASON_LOCAL_CHANGED,
    REASON_LOCAL_MISSING,
    Uploader,
    UploadItem,
    UploadResult,
)

logger = logging.getLogger(__name__)

#: The largest --batch-size: a batch of rows is held in memory, its marks in one transaction.
MAX_BATCH_SIZE = 100_000
#: Error details kept in a summary (the counts by reason are always exact).
MAX_ERROR_DETAILS = 100
OUTCOME_MIGRATED = "migrated"
OUTCOME_SKIPPED_EXISTING = "skipped_existing"


#: Seconds between the warnings that count the failures waiting for a retry round.
RETRY_WARNING_SECONDS = 10.0


@dataclass(frozen=True)
class BackfillOptions:
    """One run: rows with ``id > position`` are processed (see :func:`start_position`).

    ``verify_hash``: a dry run hashes each local file and compares it with the catalog (off:
    existence and size only). A real run always hashes: the uploader must hash every file to send
    its checksum, and a file that no longer matches the catalog is never uploaded.

    Retries: botocore already retries each request (``AWS_S3_MAX_ATTEMPTS``); an object that
    still fails with a reason in ``retry_reasons`` is queued again, up to ``retry_rounds``
    further rounds after the main pass, ``retry_backoff * round`` seconds apart. Only the final
    outcome counts (and only it may block the checkpoint).
    """

    selection: Selection = field(default_factory=Selection)
    position: int = 0
    limit: int | None = None
    batch_size: int = 500
    dry_run: bool = False
    verify_hash: bool = True
    verify_method: str = "etag"
    flush_seconds: float = 2.0
    started_from: str = "start"
    retry_rounds: int = 2
    retry_backoff: float = 0.5
    retry_reasons: tuple[str, ...] = ("s3_error",)
    #: Stop taking new work after this many S3 failures in a row with no success between
    #: them (0: never): S3 is down or refusing, and going on would only fail every remaining
    #: row after its retries, for as long as the pass takes.
    max_consecutive_errors: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(
                f"--batch-size {self.batch_size} must be from 1 to {MAX_BATCH_SIZE} (rows held "
                "in memory and marks written per transaction)",
                variable="--batch-size",
                value=self.batch_size,
            )
        if self.limit is not None and self.limit < 1:
            raise ConfigError(
                f"--limit {self.limit} must be at least 1", variable="--limit", value=self.limit
            )
        if self.max_consecutive_errors < 0:
            raise ConfigError(
                f"--max-consecutive-errors {self.max_consecutive_errors} must be 0 (never stop) "
                "or more",
                variable="--max-consecutive-errors",
                value=self.max_consecutive_errors,
            )
        if self.retry_rounds < 0 or self.retry_backoff < 0:
            raise ConfigError(
                "retry_rounds and retry_backoff must be >= 0",
                variable="retry_rounds",
                value=self.retry_rounds,
            )
        if self.verify_method not in ("etag", "head"):
            raise ConfigError(
                f"--verify-method {self.verify_method!r} must be etag or head",
                variable="--verify-method",
                value=self.verify_method,
            )


@dataclass
class BackfillSummary:
    """What a run did (``as_dict`` is the ``--json`` output)."""

    dry_run: bool
    filters: dict[str, Any]
    started_from: str
    start_position: int
    found: int = 0
    migrated: int = 0
    would_migrate: int = 0
    skipped_existing: int = 0
    skipped_already_migrated: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_details: list[dict[str, Any]] = field(default_factory=list)
    bytes: int = 0
    duration_s: float = 0.0
    interrupted: bool = False
    #: Why the run stopped taking new work on its own (``--max-consecutive-errors``), or "".
    stopped_reason: str = ""
    last_id: int = 0
    resume_token: str = ""
    verified_by: Counter[str] = field(default_factory=Counter)

    @property
    def error_count(self) -> int:
        """All errors, whatever their reason."""
        return sum(self.errors.values())

    @property
    def objects_per_s(self) -> float:
        """Objects processed (migrated, skipped or failed) per second."""
        return self.found / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """Megabytes (10^6) uploaded per second."""
        return self.bytes / 1e6 / self.duration_s if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (format version 1)."""
        return {
            "format_version": 1,
            "dry_run": self.dry_run,
            "filters": self.filters,
            "started_from": self.started_from,
            "start_position": self.start_position,
            "found": self.found,
            "migrated": self.migrated,
            "would_migrate": self.would_migrate,
            "skipped": {
                "already_migrated": self.skipped_already_migrated,
                "already_in_s3": self.skipped_existing,
            },
            "errors": dict(sorted(self.errors.items())),
            "error_count": self.error_count,
            "error_details": self.error_details,
            "verified_by": dict(sorted(self.verified_by.items())),
            "bytes": self.bytes,
            "duration_s": round(self.duration_s, 3),
            "objects_per_s": round(self.objects_per_s, 2),
            "mb_per_s": round(self.mb_per_s, 3),
            "interrupted": self.interrupted,
            "stopped_reason": self.stopped_reason or None,
            "last_id": self.last_id,
            "resume_token": self.resume_token,
        }


def start_position(
    catalog: Catalog,
    selection: Selection,
    *,
    resume: bool = False,
    token: str | None = None,
    dry_run: bool = False,
) -> tuple[int, str]:
    """Where a run starts: ``(position, source)``; source is ``start``, ``checkpoint``, ``token``.

    A token must have been made for the same selection (else :class:`ConfigError`). ``resume``
    reads the catalog's checkpoint for this selection; without one the run starts at the
    beginning of the selection (nothing is skipped by starting early: migrated rows are not
    selected again).
    """
    if token is not None:
        parsed = ResumeToken.decode(token)
        parsed.check_usable(dry_run=dry_run)
        parsed.check_matches(selection)
        return max(parsed.last_id, selection.first_position), "token"
    if resume:
        checkpoint = catalog.load_checkpoint(selection.fingerprint())
        if checkpoint is not None:
            return max(checkpoint.last_id, selection.first_position), "checkpoint"
        logger.info("no checkpoint for %s; starting at the beginning", selection.describe())
    return selection.first_position, "start"


class _Watermark:
    """The highest id up to which every issued row succeeded; it never passes a failure."""

    def __init__(self, position: int) -> None:
        self.value = position
        self._issued: deque[int] = deque()
        self._finished: dict[int, bool] = {}
        self._blocked = False

    def issue(self, row_id: int) -> None:
        self._issued.append(row_id)

    def finish(self, row_id: int, ok: bool) -> None:
        self._finished[row_id] = ok
        while self._issued and self._issued[0] in self._finished:
            head = self._issued.popleft()
            if not self._finished.pop(head):
                self._blocked = True
            if not self._blocked:
                self.value = head


class Backfill:
    """Runs backfills of ``catalog`` from ``media_root`` through ``uploader``.

    ``uploader`` may be None for dry runs (they make no S3 request). ``stop`` is checked before
    each new item is handed out; ``allowed`` (the backfill flag) at every checkpoint. ``clock``
    and ``now`` are injectable for tests.
    """

    def __init__(
        self,
        catalog: Catalog,
        media_root: str | os.PathLike[str],
        *,
        uploader: Uploader | None = None,
        metrics: Metrics | None = None,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], object] | None = None,
        allowed: Callable[[], bool] | None = None,
    ) -> None:
        self.catalog = catalog
        self.media_root = Path(media_root)
        self._media = MediaRoot(self.media_root)
        self._outcomes: Counter[str] = Counter()
        self.uploader = uploader
        self.metrics = metrics
        self.progress = progress or NullProgress()
        self.stop = stop or threading.Event()
        self.clock = clock
        self.now = now
        # The pause between retry rounds ends early when a stop is requested.
        self.sleep = sleep or self.stop.wait
        #: Asked at every checkpoint of a real run: False (CERT_S3_BACKFILL_ENABLED turned off
        #: in the flags file) stops taking new work, so one edit is the rollback.
        self.allowed = allowed

    def _pending_rows(self, options: BackfillOptions) -> Iterator[CertificateRecord]:
        """Pending rows after the position, keyset batches, honouring limit and stop."""
        after = options.position
        handed = 0
        while True:
            size = options.batch_size
            if options.limit is not None:
                size = min(size, options.limit - handed)
                if size <= 0:
                    return
            batch = self.catalog.next_batch(
                after, size, selection=options.selection, state="pending"
            )
            for row in batch:
                if self.stop.is_set():
                    return
                handed += 1
                yield row
            if len(batch) < size:
                return
            after = batch[-1].id

    def _path(self, row: CertificateRecord) -> Path | None:
        try:
            return self._media.resolve(row.key)
        except InvalidKeyError:
            return None

    def run(self, options: BackfillOptions) -> BackfillSummary:
        """Run once; see the module docstring."""
        self._media = MediaRoot(self.media_root)  # the root as it is now, resolved once
        summary = BackfillSummary(
            dry_run=options.dry_run,
            filters=options.selection.describe(),
            started_from=options.started_from,
            start_position=options.position,
            last_id=options.position,
        )
        started = self.clock()
        total = self.catalog.count(
            selection=options.selection, state="pending", after_id=options.position
        )
        if options.limit is not None:
            total = min(total, options.limit)
        self.progress.start(total)
        try:
            if options.dry_run:
                last_seen = self._dry_run(options, summary)
            else:
                if self.uploader is None:
                    raise ValueError("a real backfill needs an uploader")
                last_seen = self._real_run(options, summary)
        finally:
            self.progress.close()
            self._publish_counts()
        summary.interrupted = self.stop.is_set() and not summary.stopped_reason
        exhausted = not self.stop.is_set() and (
            options.limit is None or summary.found < options.limit
        )
        through = None if exhausted else last_seen
        already = self.catalog.count(
            selection=options.selection,
            state="migrated",
            after_id=options.position,
            through_id=through,
        )
        summary.skipped_already_migrated = max(
            already - summary.migrated - summary.skipped_existing, 0
        )
        summary.duration_s = self.clock() - started
        summary.resume_token = ResumeToken.for_selection(
            options.selection, summary.last_id, dry_run=options.dry_run
        ).encode()
        return summary

    def _record_error(
        self, summary: BackfillSummary, row: CertificateRecord, reason: str, detail: str
    ) -> None:
        summary.errors[reason] += 1
        if len(summary.error_details) < MAX_ERROR_DETAILS:
            summary.error_details.append(
                {"id": row.id, "key": row.key, "reason": reason, "detail": detail}
            )
        logger.warning("BACKFILL error id=%s key=%r reason=%s: %s", row.id, row.key, reason, detail)

    def _dry_run(self, options: BackfillOptions, summary: BackfillSummary) -> int:
        """Look at every selected row locally; no S3 request, no catalog write."""
        watermark = _Watermark(options.position)
        last_seen = options.position
        for row in self._pending_rows(options):
            summary.found += 1
            last_seen = row.id
            watermark.issue(row.id)
            reason, detail = self._check_local(row, options.verify_hash)
            if reason is None:
                summary.would_migrate += 1
                summary.bytes += row.size
            else:
                self._record_error(summary, row, reason, detail)
            watermark.finish(row.id, reason is None)
            self.progress.advance(1, row.size)
        summary.last_id = watermark.value
        return last_seen

    def _check_local(self, row: CertificateRecord, verify_hash: bool) -> tuple[str | None, str]:
        """The dry run's verdict on a row's local file, in the words (and with the checks) of
        the real run's engines, so a dry run predicts the real run's reasons."""
        path = self._path(row)
        if path is None:
            return REASON_LOCAL_MISSING, f"key {row.key!r} resolves outside the media root"
        item = UploadItem(row.key, path, row.sha256, row.size)
        try:
            check_size(item, local_size(item))
            if verify_hash:
                try:
                    _size, sha256 = file_sha256(path)
                except OSError as err:
                    return REASON_LOCAL_MISSING, f"local file {path} cannot be read: {err}"
                check_sha256(item, sha256)
        except LocalFileProblem as problem:
            return str(problem.reason), str(problem)
        return None, ""

    def _real_run(self, options: BackfillOptions, summary: BackfillSummary) -> int:
        assert self.uploader is not None
        watermark = _Watermark(options.position)
        marks: list[Mark] = []
        run_key = options.selection.fingerprint()
        filters = options.selection.describe()
        last_flush = self.clock()
        last_seen = options.position
        rows: dict[int, CertificateRecord] = {}
        invalid: list[CertificateRecord] = []
        retry: list[UploadItem] = []
        not_sent: list[UploadItem] = []
        #: The rows and results behind ``marks`` (undone if the catalog refuses a mark).
        marked: dict[int, tuple[CertificateRecord, UploadResult]] = {}
        # An engine may pull items on its own thread (obstore drives them from its event
        # loop), so everything items() shares with the result loop is guarded by ``lock``.
        lock = threading.Lock()

        def items() -> Iterator[UploadItem]:
            nonlocal last_seen
            for row in self._pending_rows(options):
                path = self._path(row)
                with lock:
                    summary.found += 1
                    last_seen = row.id
                    watermark.issue(row.id)
                    if path is None:
                        invalid.append(row)
                        continue
                    rows[row.id] = row
                yield UploadItem(row.key, path, row.sha256, row.size, token=row.id, md5=row.md5)

        def until_stopped(batch: list[UploadItem]) -> Iterator[UploadItem]:
            """A retry round's items, handed out one by one until a stop is requested (the
            engine pulls them as slots free up); the rest are reported as not retried."""
            for index, item in enumerate(batch):
                if self.stop.is_set():
                    not_sent.extend(batch[index:])
                    return
                yield item

        def report_invalid() -> None:
            with lock:
                bad_rows = list(invalid)
                invalid.clear()
            for bad in bad_rows:
                self._fail(
                    summary,
                    bad,
                    REASON_LOCAL_MISSING,
                    f"key {bad.key!r} resolves outside the media root",
                )
                with lock:
                    watermark.finish(bad.id, False)

        stored_checkpoint = self.catalog.load_checkpoint(run_key)
        # What the catalog holds for this run (compare-and-set), and where this run last
        # wrote: the rows after it are the ones to check for a concurrent change at the next.
        stored: list[int | None] = [
            None if stored_checkpoint is None else stored_checkpoint.last_id
        ]
        proven_from = [options.position]
        #: Set when the catalog kept the checkpoint below the run's position: the resume
        #: token must not claim more than the catalog does.
        held_back: list[int | None] = [None]

        def flush(*, final: bool = False) -> None:
            nonlocal last_flush
            with lock:
                position = watermark.value
            # A run that made no progress leaves an existing checkpoint alone.
            checkpoint = (
                Checkpoint(run_key, position, filters, self.now())
                if position > options.position
                else None
            )
            if marks or checkpoint is not None:
                outcome = self.catalog.mark_migrated(
                    marks,
                    checkpoint=checkpoint,
                    checkpoint_expected=stored[0],
                    checked_from=proven_from[0],
                )
                for row_id in outcome.not_applied:
                    refused = marked.pop(row_id, None)
                    if refused is not None:
                        self._unmark(summary, *refused)
                written = outcome.checkpoint
                if checkpoint is not None and written is not None:
                    held_back[0] = written if written < position else None
                    if written < position:
                        logger.warning(
                            "BACKFILL checkpoint kept at %s, not %s: rows of this run became "
                            "pending again meanwhile (catalog import --update-changed or "
                            "validate --repair); --resume will process them",
                            written,
                            position,
                        )
                    stored[0] = written
                    proven_from[0] = written
            marks.clear()
            marked.clear()
            self._publish_counts()
            last_flush = self.clock()
            if not final:
                still_allowed()

        def still_allowed() -> None:
            if self.allowed is None or self.stop.is_set():
                return
            try:
                allowed = self.allowed()
            except ConfigError as err:  # the flag cannot be read: do not go on without it
                logger.error("BACKFILL cannot read CERT_S3_BACKFILL_ENABLED: %s", err)
                allowed = False
            if not allowed:
                summary.stopped_reason = (
                    "CERT_S3_BACKFILL_ENABLED was turned off (or CERT_S3_ONLY on) during the "
                    "run: stopped taking new work (the uploads in flight finished and were "
                    "recorded); --resume continues once the flags allow it again"
                )
                logger.warning("BACKFILL %s", summary.stopped_reason)
                self.stop.set()

        failed_in_a_row = [0]
        last_retry_warning = [float("-inf")]

        def watch_s3(result: UploadResult, row: CertificateRecord, transient: bool) -> None:
            """Past ``max_consecutive_errors`` S3 failures with no success between them, stop
            taking new work (like a signal, but the summary says why and the exit is 1)."""
            if result.ok:
                failed_in_a_row[0] = 0
                return
            if not transient:
                return  # a local problem says nothing about S3
            failed_in_a_row[0] += 1
            limit = options.max_consecutive_errors
            if limit and failed_in_a_row[0] >= limit and not self.stop.is_set():
                summary.stopped_reason = (
                    f"S3 failed {failed_in_a_row[0]} objects in a row (last: id={row.id}: "
                    f"{result.detail}); stopped taking new work: fix S3, then --resume"
                )
                logger.error("BACKFILL %s", summary.stopped_reason)
                self.stop.set()

        def consume(
            source: Iterator[UploadItem] | list[UploadItem], last_round: bool, *, first_pass: bool
        ) -> None:
            assert self.uploader is not None
            results = self.uploader.upload(source, verify_method=options.verify_method)
            try:
                for result in results:
                    report_invalid()
                    with lock:
                        row = rows[int(result.item.token)]  # type: ignore[call-overload]
                    transient = not result.ok and result.reason in options.retry_reasons
                    if first_pass:  # a retry round holds only earlier failures: no signal
                        watch_s3(result, row, transient)
                    if transient and not last_round and not self.stop.is_set():
                        retry.append(result.item)
                        logger.info(
                            "BACKFILL will retry id=%s (%s): %s",
                            row.id,
                            result.reason,
                            result.detail,
                        )
                        # Failures waiting for a retry round are not in the progress count
                        # yet: say so, or an S3 outage reads as "nothing finished" for hours.
                        if self.clock() - last_retry_warning[0] >= RETRY_WARNING_SECONDS:
                            last_retry_warning[0] = self.clock()
                            logger.warning(
                                "BACKFILL %d object(s) failed so far and wait for a retry "
                                "round (last: id=%s %s: %s)",
                                len(retry),
                                row.id,
                                result.reason,
                                result.detail,
                            )
                        continue
                    with lock:
                        rows.pop(row.id)
                    self._apply(result, row, summary, marks)
                    if result.ok:
                        marked[row.id] = (row, result)
                    with lock:
                        watermark.finish(row.id, result.ok)
                    self.progress.advance(1, result.bytes_sent)
                    if (
                        len(marks) >= options.batch_size
                        or self.clock() - last_flush >= options.flush_seconds
                    ):
                        flush()
            finally:
                close = getattr(results, "close", None)
                if close is not None:
                    close()

        try:
            consume(items(), options.retry_rounds == 0, first_pass=True)
            for round_number in range(1, options.retry_rounds + 1):
                if not retry:
                    break
                if self.stop.is_set():
                    break
                flush()
                self.sleep(options.retry_backoff * round_number)
                if self.stop.is_set():
                    break
                again, retry[:] = list(retry), []
                logger.info("BACKFILL retry round %d: %d object(s)", round_number, len(again))
                consume(
                    until_stopped(again), round_number == options.retry_rounds, first_pass=False
                )
        finally:
            report_invalid()
            for item in retry + not_sent:
                row = rows.pop(int(item.token))  # type: ignore[call-overload]
                self._fail(summary, row, "s3_error", "not retried: the run was stopped")
                watermark.finish(row.id, False)
            flush(final=True)
        summary.last_id = watermark.value
        if held_back[0] is not None:
            summary.last_id = min(summary.last_id, held_back[0])
        return last_seen

    def _fail(
        self, summary: BackfillSummary, row: CertificateRecord, reason: str, detail: str
    ) -> None:
        self._record_error(summary, row, reason, detail)
        self._count(reason)
        self.progress.advance(1)

    def _apply(
        self,
        result: UploadResult,
        row: CertificateRecord,
        summary: BackfillSummary,
        marks: list[Mark],
    ) -> None:
        if not result.ok:
            reason = result.reason or "s3_error"
            self._record_error(summary, row, reason, result.detail)
            self._count(reason)
            return
        when = self.now()
        marks.append(Mark(row.id, result.etag, when, when, sha256=row.sha256 or None))
        summary.verified_by[result.verified_by or "unknown"] += 1
        if result.skipped_existing:
            summary.skipped_existing += 1
            self._count(OUTCOME_SKIPPED_EXISTING)
        else:
            summary.migrated += 1
            summary.bytes += result.bytes_sent
            self._count(OUTCOME_MIGRATED)

    def _unmark(
        self, summary: BackfillSummary, row: CertificateRecord, result: UploadResult
    ) -> None:
        """A verified copy whose mark the catalog refused: the row's content was re-imported
        as changed while it uploaded. It stays pending (the next run uploads the new
        content) and is reported as ``local_changed`` instead of migrated."""
        summary.verified_by[result.verified_by or "unknown"] -= 1
        if result.skipped_existing:
            summary.skipped_existing -= 1
            self._outcomes[OUTCOME_SKIPPED_EXISTING] -= 1
        else:
            summary.migrated -= 1
            summary.bytes -= result.bytes_sent
            self._outcomes[OUTCOME_MIGRATED] -= 1
        self._record_error(
            summary,
            row,
            REASON_LOCAL_CHANGED,
            "the catalog row changed while it was uploaded (catalog import --update-changed); "
            "it stays pending and the next run uploads the new content",
        )
        self._count(REASON_LOCAL_CHANGED)

    def _count(self, outcome: str) -> None:
        self._outcomes[outcome] += 1

    def _publish_counts(self) -> None:
        """Emit ``cert.backfill.objects`` for the outcomes counted since the last call: once
        per outcome and batch (with the catalog marks), not once per object, which cost more
        CPU than the upload's own Python side."""
        outcomes, self._outcomes = self._outcomes, Counter()
        if self.metrics is None:
            return
        for outcome, count in sorted(outcomes.items()):
            self.metrics.inc("cert.backfill.objects", count, labels={"outcome": outcome})


__all__ = [
    "Backfill",
    "BackfillOptions",
    "BackfillSummary",
    "start_position",
]
