"""The rehearsal itself: the real cutover, phase by phase, on synthetic certificates.

1. **phase 0 (legacy)** -- flags all off: a share of the certificates is saved through the router
   and lands on the local disk only, as years of production data did (the router must make no S3
   call: that is checked).
2. **phase 1 (shadow)** -- ``CERT_S3_DUAL_WRITE`` on in the flags file (no restart): the rest
   are saved through the router, local then S3. Upload latency is the router's own
   ``cert.s3.save.seconds`` on these saves, over real HTTP.
3. **catalog** -- the media root is imported into the catalog (``certstore catalog import``).
4. **backfill** -- ``CERT_S3_BACKFILL_ENABLED`` on; the verified backfill copies the legacy
   files (and proves the shadow copies are already there), then the flag goes off again.
5. **consistency** -- catalog vs S3: every catalogued key present in S3 with the same bytes.
6. **phase 2 (read-primary)** -- ``CERT_S3_READ_PRIMARY`` on: for every certificate a presigned
   URL (timed), a download of that URL over HTTP (timed, SHA-256 compared with the original) and
   a read through the router. Then a forced fallback: one object is deleted from S3 and read
   again; it must be served from local and counted as ``cert.s3.read.fallback``. This probe is
   left out of the fallback rate (it is a fallback on purpose), then the object is restored.
7. **lifecycle** -- the policy is applied and read back (embedded; on a real bucket only with
   ``apply_lifecycle``, otherwise the bucket's policy is validated read-only).

Every S3 request of the rehearsal goes through clients that carry the fault injector, so
``inject_faults``/``inject_latency_ms`` degrade all of it, retries and backoff included.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from certstore.backends.local import LocalBackend
from certstore.backends.s3 import S3Backend
from certstore.config import Flags, FlagSource
from certstore.errors import CertstoreError
from certstore.metrics import MetricEvent, Metrics, RecordingEmitter
from certstore.rehearsal._checklist import (
    Measure,
    Thresholds,
    evaluate,
    flags_measure,
    verdict,
)
from certstore.rehearsal._environment import Environment, open_environment
from certstore.rehearsal._faults import FaultInjector
from certstore.rehearsal._results import RehearsalResult, estimate, measures, summarise
from certstore.rehearsal._synthetic import SyntheticCertificate, generate
from certstore.storage import CertificateStorage

logger = logging.getLogger(__name__)

#: Flag states the rehearsal must end in: phase 2, backfill gate closed again.
END_FLAGS = {"dual_write": True, "read_primary": True, "backfill_enabled": False, "s3_only": False}

ProgressFactory = Callable[[str, int], Any]


@dataclass(frozen=True)
class RehearsalOptions:
    """What to rehearse. Defaults are the embedded run the README starts."""

    count: int = 500
    size: int = 50 * 1024
    utf8_share: float = 0.1
    legacy_share: float = 0.5
    seed: int = 0
    workers: int = 8
    real_s3: bool = False
    bucket: str | None = None
    prefix: str | None = None
    inject_faults: float = 0.0
    inject_latency_ms: float = 0.0
    apply_lifecycle: bool | None = None
    skip_lifecycle: bool = False
    estimate_count: int = 10_000
    time_limit_s: float = 900.0
    keep: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        from certstore.errors import ConfigError

        checks = (
            ("--count", 1 <= self.count <= 1_000_000, "from 1 to 1,000,000"),
            ("--size-kb", 0 <= self.size <= 256 * 1024 * 1024, "from 0 to 262144 KiB"),
            ("--utf8-share", 0 <= self.utf8_share <= 1, "between 0 and 1"),
            ("--legacy-share", 0 <= self.legacy_share <= 1, "between 0 and 1"),
            ("--workers", 1 <= self.workers <= 256, "from 1 to 256"),
            ("--inject-faults", 0 <= self.inject_faults <= 1, "between 0 and 1"),
            ("--inject-latency-ms", 0 <= self.inject_latency_ms <= 60_000, "from 0 to 60000"),
            ("--estimate-count", self.estimate_count >= 1, "at least 1"),
            ("--time-limit", self.time_limit_s > 0, "above 0"),
        )
        for option, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{option} must be {rule}", variable=option)


class _NullBar:
    def start(self, total: int) -> None:
        pass

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        pass

    def close(self) -> None:
        pass


class _TimeUp(Exception):
    """The rehearsal's time limit ran out inside a phase."""


class _Run:
    """State of one rehearsal while it runs."""

    def __init__(
        self,
        options: RehearsalOptions,
        env: Environment,
        progress: ProgressFactory | None,
        production_flags: FlagSource,
    ) -> None:
        self.options = options
        self.env = env
        self.progress = progress or (lambda label, total: _NullBar())
        self.production_flags = production_flags
        self.deadline = time.monotonic() + options.time_limit_s
        self.recorder = RecordingEmitter()
        self.metrics = Metrics([self.recorder])
        self.faults = FaultInjector(
            options.inject_faults, options.inject_latency_ms, seed=options.seed
        )
        self.client = self.faults.attach(env.client())
        self.s3 = S3Backend(
            self.client,
            env.bucket,
            prefix=env.prefix,
            url_expiry=env.settings.url_expiry,
            metrics=self.metrics,
        )
        self.local = LocalBackend(env.media_root)
        self.storage = CertificateStorage(
            self.local, self.s3, flags=env.flag_source, metrics=self.metrics
        )
        self.certificates: list[SyntheticCertificate] = []
        self.saved: dict[str, SyntheticCertificate] = {}
        self.measures: dict[str, Measure] = {}
        self.phases: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.latency: dict[str, list[float]] = {"upload": [], "url": [], "download": [], "read": []}
        self.ops = 0
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.reads = 0
        self.fallbacks = 0
        self.downloads = 0
        self.hash_ok = 0
        #: Downloads that returned a body (a failed one is an error, not a hash mismatch).
        self.downloaded = 0
        self.upload_bytes = 0
        self.upload_wall = 0.0
        self.backfill: dict[str, Any] | None = None
        self.completed = True
        self.failures: list[str] = []

    # -- helpers -----------------------------------------------------------------------
    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _TimeUp(f"time limit of {self.options.time_limit_s:g} s reached")

    def error(self, kind: str, count: int = 1) -> None:
        if count <= 0:
            return
        self.errors += count
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + count

    def events_since(self, mark: int, name: str) -> list[MetricEvent]:
        return [e for e in self.recorder.events[mark:] if e.name == name]

    def phase(self, name: str, func: Callable[[], dict[str, Any]]) -> None:
        started = time.perf_counter()
        entry: dict[str, Any] = {"name": name}
        try:
            entry.update(func())
            entry["status"] = "done"
        except _TimeUp as err:
            entry["status"] = "stopped"
            entry["error"] = str(err)
            self.completed = False
            self.failures.append(f"{name}: {err}")
        except CertstoreError as err:
            entry["status"] = "failed"
            entry["error"] = str(err)
            self.completed = False
            self.failures.append(f"{name}: {err}")
            logger.warning("rehearsal phase %s failed: %s", name, err)
        entry["duration_s"] = round(time.perf_counter() - started, 3)
        self.phases.append(entry)

    # -- phases ------------------------------------------------------------------------
    def generate(self) -> dict[str, Any]:
        self.certificates = generate(
            self.options.count,
            size=self.options.size,
            utf8_share=self.options.utf8_share,
            seed=self.options.seed,
        )
        total = sum(c.size for c in self.certificates)
        utf8 = sum(1 for c in self.certificates if not c.key.isascii())
        return {"certificates": len(self.certificates), "bytes": total, "utf8_names": utf8}

    def _save_all(self, batch: list[SyntheticCertificate], label: str) -> None:
        bar = self.progress(label, len(batch))
        bar.start(len(batch))
        try:
            for cert in batch:
                self.check_time()
                key = self.storage.save(cert.key, cert.data)
                self.saved[key] = cert
                bar.advance(1, cert.size)
        finally:
            bar.close()

    def phase0_legacy(self) -> dict[str, Any]:
        self.env.set_flags(Flags())
        legacy = self.certificates[: round(len(self.certificates) * self.options.legacy_share)]
        mark = len(self.recorder.events)
        self._save_all(legacy, "phase 0: legacy saves (local only)")
        s3_events = [e for e in self.recorder.events[mark:] if e.name.startswith("cert.s3.")]
        if s3_events:
            self.notes.append(f"phase 0 made {len(s3_events)} S3 call(s) with every flag off")
            raise CertstoreError("the router touched S3 in phase 0 (all flags off)")
        return {"saved_local_only": len(legacy), "s3_events": 0}

    def phase1_shadow(self) -> dict[str, Any]:
        self.env.set_flags(Flags(dual_write=True))
        rest = self.certificates[round(len(self.certificates) * self.options.legacy_share) :]
        mark = len(self.recorder.events)
        started = time.perf_counter()
        self._save_all(rest, "phase 1: dual-write saves")
        self.upload_wall = time.perf_counter() - started
        saves = self.events_since(mark, "cert.s3.save")
        fails = self.events_since(mark, "cert.s3.save.fail")
        self.latency["upload"] = [e.value for e in self.events_since(mark, "cert.s3.save.seconds")]
        self.ops += len(saves)
        self.error("dual-write save", len(fails))
        self.upload_bytes = sum(c.size for c in rest)
        return {"saved": len(rest), "s3_saves": len(saves), "s3_save_failures": len(fails)}

    def catalog_import(self) -> dict[str, Any]:
        from certstore.catalog import Catalog, import_tree

        with Catalog(self.env.catalog_url) as catalog:
            report = import_tree(catalog, self.env.media_root)
            stats = catalog.stats()
        if stats.total != len(self.saved):
            raise CertstoreError(
                f"the catalog holds {stats.total} rows for {len(self.saved)} saved certificates"
            )
        return {"scanned": report.scanned, "added": report.added, "rows": stats.total}

    def backfill_step(self) -> dict[str, Any]:
        from certstore.backfill import Backfill, BackfillOptions
        from certstore.catalog import Catalog
        from certstore.transfer import make_uploader

        self.env.set_flags(Flags(dual_write=True, backfill_enabled=True))
        if not self.env.flag_source.current().backfill_enabled:
            raise CertstoreError("CERT_S3_BACKFILL_ENABLED did not take effect")
        uploader = make_uploader(
            self.env.settings,
            workers=self.options.workers,
            engine="boto3",
            client=self.client,
            metrics=self.metrics,
        )
        stop = threading.Event()
        timer = threading.Timer(max(self.deadline - time.monotonic(), 0.0), stop.set)
        timer.daemon = True
        timer.start()
        try:
            with Catalog(self.env.catalog_url) as catalog:
                total = catalog.count(state="pending")
                bar = self.progress("backfill (verified)", total)
                summary = Backfill(
                    catalog,
                    self.env.media_root,
                    uploader=uploader,
                    metrics=self.metrics,
                    progress=bar,
                    stop=stop,
                ).run(BackfillOptions())
                stats = catalog.stats()
        finally:
            timer.cancel()
            uploader.close()
            self.env.set_flags(Flags(dual_write=True))
        data = summary.as_dict()
        self.backfill = data
        self.ops += summary.found
        self.error("backfill", summary.error_count)
        complete = stats.migrated == stats.total and summary.error_count == 0
        self.measures["backfill_complete"] = Measure(
            complete,
            f"{stats.migrated}/{stats.total} migrated, {summary.error_count} errors",
            note=(
                f"uploaded {summary.migrated}, already in S3 {summary.skipped_existing}; "
                f"errors by reason: {data['errors'] or 'none'}"
            ),
        )
        if summary.interrupted:
            raise _TimeUp(
                f"time limit of {self.options.time_limit_s:g} s reached during the backfill "
                f"({summary.found} of {total} objects)"
            )
        return {
            "found": summary.found,
            "migrated": summary.migrated,
            "already_in_s3": summary.skipped_existing,
            "errors": data["errors"],
            "bytes": summary.bytes,
            "duration_s": round(summary.duration_s, 3),
            "objects_per_s": round(summary.objects_per_s, 2),
            "mb_per_s": round(summary.mb_per_s, 3),
            "catalog_migrated": stats.migrated,
            "catalog_verified": stats.verified,
        }

    def consistency_step(self) -> dict[str, Any]:
        from certstore.rehearsal._consistency import check_consistency

        outcome = check_consistency(self)
        self.measures["consistency"] = outcome.measure
        return outcome.details

    def phase2_reads(self) -> dict[str, Any]:
        self.env.set_flags(Flags(dual_write=True, read_primary=True))
        keys = list(self.saved)
        mark = len(self.recorder.events)
        bar = self.progress("phase 2: read-primary URLs, downloads, reads", len(keys))
        bar.start(len(keys))
        try:
            for key in keys:
                self.check_time()
                self._read_one(key)
                bar.advance(1, self.saved[key].size)
        finally:
            bar.close()
        reads = self.events_since(mark, "cert.s3.read")
        fallbacks = self.events_since(mark, "cert.s3.read.fallback")
        self.latency["read"] = [e.value for e in self.events_since(mark, "cert.s3.read.seconds")]
        self.reads += len(reads)
        self.fallbacks += len(fallbacks)
        self.error(
            "read served by fallback after an S3 error",
            sum(1 for e in fallbacks if e.labels.get("reason") == "error"),
        )
        url_fallbacks = self.events_since(mark, "cert.s3.url.fallback")
        self.error("URL generation", len(url_fallbacks))
        return {
            "urls": len(self.latency["url"]),
            "downloads": self.downloads,
            "downloaded": self.downloaded,
            "hash_matches": self.hash_ok,
            "router_reads": len(reads),
            "fallbacks": len(fallbacks),
        }

    def _read_one(self, key: str) -> None:
        cert = self.saved[key]
        self.ops += 1
        started = time.perf_counter()
        try:
            url = self.storage.url(key)
        except CertstoreError:
            self.error("URL generation")
            return
        self.latency["url"].append(time.perf_counter() - started)
        self.ops += 1
        self.downloads += 1
        body = self._download(url)
        if body is not None:
            self.downloaded += 1
            if hashlib.sha256(body).hexdigest() == cert.sha256:
                self.hash_ok += 1
        self.ops += 1
        try:
            data = self.storage.read(key)
        except CertstoreError:
            self.error("router read")
            return
        if data != cert.data:
            self.error("router read returned different bytes")

    def _download(self, url: str) -> bytes | None:
        started = time.perf_counter()
        try:
            if self.faults.active and self.faults.http_fault():
                raise urllib.error.HTTPError(url, 503, "SlowDown (injected)", None, None)  # type: ignore[arg-type]
            with urllib.request.urlopen(url, timeout=self.env.settings.read_timeout) as response:
                body: bytes = response.read()
        except (urllib.error.URLError, OSError) as err:
            self.error("presigned download")
            logger.debug("download failed: %s", err)
            return None
        self.latency["download"].append(time.perf_counter() - started)
        return body

    def fallback_probe(self) -> dict[str, Any]:
        if not self.saved:
            raise CertstoreError("nothing was saved, so there is nothing to probe")
        key = next(iter(self.saved))
        cert = self.saved[key]
        clean = S3Backend(self.env.client(), self.env.bucket, prefix=self.env.prefix)
        clean.delete(key)
        mark = len(self.recorder.events)
        try:
            data = self.storage.read(key)
        except CertstoreError as err:
            data = None
            logger.warning("fallback probe read failed: %s", err)
        fallbacks = [
            e
            for e in self.events_since(mark, "cert.s3.read.fallback")
            if e.context.get("key") == key
        ]
        served = data == cert.data
        counted = any(e.labels.get("reason") == "missing" for e in fallbacks)
        clean.save(key, cert.data, sha256=cert.sha256)
        self.measures["fallback_probe"] = Measure(
            served and counted,
            f"served from local: {'yes' if served else 'no'}, "
            f"cert.s3.read.fallback{{reason=missing}} counted: {'yes' if counted else 'no'}",
            note="one object deleted from S3 on purpose, read through the router, then "
            "restored; excluded from the fallback rate",
        )
        return {
            "key": key,
            "served_from_local": served,
            "fallback_counted": counted,
            "restored": True,
        }

    def lifecycle_step(self) -> dict[str, Any]:
        from certstore import lifecycle

        if self.options.skip_lifecycle:
            self.measures["lifecycle_valid"] = Measure(None, skip="--skip-lifecycle given")
            return {"skipped": True}
        apply = self.options.apply_lifecycle
        if apply is None:
            apply = self.env.mode == "embedded"
        # on a real bucket the policy that matters is production's, on its own prefix
        policy = lifecycle.build_policy(self.env.base_prefix)
        if apply:
            lifecycle.apply_policy(self.client, self.env.bucket, policy)
        result = lifecycle.validate_bucket(self.client, self.env.bucket, policy)
        note = (
            "applied, then read back"
            if apply
            else "read-only check of the bucket's policy (not applied)"
        )
        if result.differences:
            note += "; " + "; ".join(result.differences)
        self.measures["lifecycle_valid"] = Measure(
            result.ok,
            "matches" if result.ok else f"{len(result.differences)} difference(s)",
            note=note,
        )
        return {
            "applied": apply,
            "prefix": policy.prefix,
            "ok": result.ok,
            "differences": result.differences,
        }

    # -- results -----------------------------------------------------------------------
    def flag_measures(self) -> None:
        end = self.env.flag_source.current()
        self.measures["rehearsal_flags"] = flags_measure(
            {k: getattr(end, k) for k in END_FLAGS},
            END_FLAGS,
            source="the rehearsal's flags file at the end",
        )
        expected = dict(self.options.thresholds.expected_flags)
        try:
            current = self.production_flags.current()
        except CertstoreError as err:
            self.measures["production_flags"] = Measure(None, fail=f"cannot read flags: {err}")
            return
        self.measures["production_flags"] = flags_measure(
            {k: getattr(current, k) for k in expected},
            expected,
            source="this environment's CERT_S3_* variables and CERTSTORE_FLAGS_FILE "
            "(production must not be mid-cutover while rehearsing)",
        )


def run_rehearsal(
    options: RehearsalOptions | None = None,
    *,
    progress: ProgressFactory | None = None,
    production_flags: FlagSource | None = None,
) -> RehearsalResult:
    """Run the rehearsal end to end and judge it (see the module docstring).

    ``progress(label, total)`` returns an object with ``start(total)``, ``advance(items,
    nbytes)`` and ``close()`` for each long phase. ``production_flags`` is where the expected
    production flag states are read (default: this process's environment).
    """
    options = options or RehearsalOptions()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    env = open_environment(
        real_s3=options.real_s3, bucket=options.bucket, prefix=options.prefix, keep=options.keep
    )
    run = _Run(options, env, progress, production_flags or FlagSource())
    try:
        run.phase("generate", run.generate)
        run.phase("phase 0: legacy saves (all flags off)", run.phase0_legacy)
        run.phase("phase 1: dual-write saves", run.phase1_shadow)
        run.phase("catalog import", run.catalog_import)
        run.phase("backfill with verification", run.backfill_step)
        run.phase("consistency check", run.consistency_step)
        run.phase("phase 2: read-primary reads and presigned downloads", run.phase2_reads)
        run.phase("forced fallback probe", run.fallback_probe)
        run.phase("lifecycle apply + validate", run.lifecycle_step)
        run.flag_measures()
    finally:
        environment = env.describe()
        env.close()
    latency, rates, throughput = summarise(run)
    checks = evaluate(measures(run, latency), options.thresholds)
    if env.mode == "real" and env.cleanup_report.get("remaining"):
        run.notes.append(
            f"cleanup left {env.cleanup_report['remaining']} object(s) under {env.prefix}"
        )
    return RehearsalResult(
        options=options,
        environment=environment,
        started_at=started_at,
        duration_s=time.perf_counter() - started,
        phases=run.phases,
        latency=latency,
        rates=rates,
        throughput=throughput,
        checks=checks,
        verdict=verdict(checks),
        estimate=estimate(run),
        notes=run.notes,
        faults={
            "rate": options.inject_faults,
            "latency_ms": options.inject_latency_ms,
            "requests_seen": run.faults.requests,
            "faults_injected": run.faults.faults,
            "seed": options.seed,
        },
        cleanup=env.cleanup_report,
    )
