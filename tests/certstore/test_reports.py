"""certstore.reports and certstore.jobs: the report text, exit codes and option checks the CLI
and the Django commands share (no S3 here; the end-to-end runs are in test_verify*, test_backfill*
and tests/django)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from certstore import reports
from certstore.cli import _app
from certstore.errors import ConfigError, ReportWriteError
from certstore.jobs import (
    BackfillRequest,
    Site,
    job_options,
    run_backfill,
    run_consistency,
    run_validation,
    stop_on_signals,
)


def _summary(**overrides: Any) -> SimpleNamespace:
    """A BackfillSummary's fields (the text only reads attributes): a clean run of 3."""
    counts = ("would_migrate", "skipped_existing", "skipped_already_migrated", "error_count")
    fields: dict[str, Any] = {
        **dict.fromkeys(counts, 0),
        **dict.fromkeys(("start_position", "mb_per_s", "duration_s", "objects_per_s"), 1.0),
        "found": 3,
        "migrated": 3,
        "bytes": 300,
        "dry_run": False,
        "interrupted": False,
        "errors": {},
        "error_details": [],
        "filters": {"tournament_id": 7},
        "started_from": "start",
        "resume_token": "tok",
    }
    fields.update(overrides)
    return SimpleNamespace(**fields, as_dict=lambda: {"migrated": fields["migrated"]})


def test_exit_codes_are_the_clis() -> None:
    for name in ("EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_NOT_FOUND", "EXIT_INTERRUPTED"):
        assert getattr(reports, name) == getattr(_app, name), name


def test_exit_code_rules() -> None:
    assert reports.status_exit_code(SimpleNamespace(status="PASS")) == 0
    assert reports.status_exit_code(SimpleNamespace(status="FAIL")) == 1
    assert reports.backfill_exit_code(_summary()) == 0
    assert reports.backfill_exit_code(_summary(error_count=1)) == 1
    assert reports.backfill_exit_code(_summary(error_count=1, interrupted=True)) == 130


def test_backfill_text_lists_twenty_errors_then_points_to_json() -> None:
    details = [
        {"id": i, "key": f"k{i}", "reason": "missing_local", "detail": "gone"} for i in range(25)
    ]
    text = reports.backfill_text(
        _summary(error_count=25, errors={"missing_local": 25}, error_details=details)
    )
    lines = text.splitlines()
    assert lines[0] == "=== Certificate S3 Backfill (RUN) ==="
    assert "Errors: 25 (missing_local=25)" in lines
    assert sum(line.startswith("  - id=") for line in lines) == 20
    assert "  ... 5 more (see --json)" in lines
    assert lines[-1] == "RESUME_TOKEN tok"
    dry = reports.backfill_text(_summary(dry_run=True, would_migrate=3, interrupted=True))
    assert "(DRY-RUN)" in dry and "Would migrate: 3" in dry and "Interrupted: yes" in dry
    assert "Migrated (verified)" not in dry


def test_consistency_text_caps_each_list() -> None:
    counts = {"catalog_migrated": 30, "s3_objects": 5, "matched": 5, "spot_checked": 5}
    report = SimpleNamespace(
        **counts,
        **dict.fromkeys(("unmarked_count", "spot_mismatch_count"), 0),
        size_mismatch_count=1,
        size_mismatches=[{"key": "pdf/short.pdf", "catalog_size": 50, "s3_size": 5}],
        etag_mismatch_count=1,
        etag_mismatches=[{"key": "pdf/x.pdf", "expected_etag": "a" * 32, "s3_etag": "b" * 32}],
        missing_count=25,
        orphan_count=1,
        seed=4,
        spot_mismatches=[],
        missing_in_s3=[f"pdf/{i}.pdf" for i in range(25)],
        orphans=["pdf/stray.pdf"],
        status="FAIL",
        mismatch_rate_percent=83.3333,
        threshold_percent=0.5,
    )
    lines = reports.consistency_text(report).splitlines()
    assert lines[0] == "DB count (migrated): 30, S3 count: 5 (matched 5)"
    assert sum(line.startswith("  missing: ") for line in lines) == 20
    assert "  orphan: pdf/stray.pdf" in lines
    assert "  size: pdf/short.pdf: S3 has 5 bytes, catalog 50" in lines
    assert f"  etag: pdf/x.pdf: S3 has {'b' * 32}, verified {'a' * 32}" in lines
    assert lines[-1] == "status: FAIL (83.333%, threshold 0.5%)"


def test_emit_report_writes_prints_and_returns_the_code(tmp_path: Path) -> None:
    report = SimpleNamespace(status="FAIL", as_dict=lambda: {"status": "FAIL", "name": "é"})
    printed: list[str] = []
    target = tmp_path / "out" / "report.json"
    code = reports.emit_report(
        report, lambda r: f"status: {r.status}", echo=printed.append, output=str(target)
    )
    assert code == 1 and printed == ["status: FAIL"]
    assert json.loads(target.read_text(encoding="utf-8")) == {"status": "FAIL", "name": "é"}
    assert not target.with_name("report.json.tmp").exists()
    printed.clear()
    assert reports.emit_report(report, str, echo=printed.append, as_json=True) == 1
    assert json.loads(printed[0])["name"] == "é"


def test_a_report_that_cannot_be_written_is_printed_first(tmp_path: Path) -> None:
    report = SimpleNamespace(status="PASS", as_dict=lambda: {"status": "PASS"})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    printed: list[str] = []
    with pytest.raises(ReportWriteError, match="printed but could not be written") as info:
        reports.emit_report(
            report, lambda r: "status: PASS", echo=printed.append, output=str(blocker / "r.json")
        )
    assert printed == ["status: PASS"] and info.value.path == str(blocker / "r.json")


@pytest.mark.parametrize("where", ["under-a-file", "a-folder"])
def test_check_output_refuses_what_cannot_be_written(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "r.json" if where == "under-a-file" else tmp_path
    with pytest.raises(ConfigError, match="--output"):
        reports.check_output(str(path))
    reports.check_output(str(tmp_path / "new" / "r.json"))
    assert (tmp_path / "new").is_dir() and not list((tmp_path / "new").iterdir())
    reports.check_output(None)


def _unreachable_site() -> Site:
    def settings() -> Any:
        raise AssertionError("options must be checked before the settings are read")

    return Site(settings, lambda *_a, **_k: None)


@pytest.mark.parametrize(
    ("job", "kwargs", "option"),
    [
        (run_consistency, {"page_size": 0}, "--page-size"),
        (run_consistency, {"page_size": 1001}, "--page-size"),
        (run_consistency, {"workers": 257}, "--workers"),
        (run_validation, {"workers": 0}, "--workers"),
    ],
)
def test_jobs_reject_out_of_range_options_first(job: Any, kwargs: dict[str, Any], option: str):
    with pytest.raises(ConfigError, match=f"{option} .* must be from"):
        job(_unreachable_site(), **kwargs)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (BackfillRequest(workers=513), "--workers must be at most 512"),
        (BackfillRequest(resume=True, resume_token="x"), "--resume or --resume-token"),
    ],
)
def test_backfill_rejects_bad_options_first(request_: BackfillRequest, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_backfill(_unreachable_site(), request_, notify=print)


def test_backfill_needs_the_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "false")
    site = Site.from_env(str(tmp_path), f"sqlite:///{tmp_path / 'c.sqlite3'}")
    with pytest.raises(ConfigError, match="CERT_S3_BACKFILL_ENABLED is not true"):
        run_backfill(site, BackfillRequest(), notify=print)
    with pytest.raises(ConfigError, match="--repair writes to S3"):
        run_validation(site, repair=True)


def test_options_are_picked_by_name() -> None:
    parsed = {"dry_run": True, "shard": "0/2", "verbosity": 1, "as_json": False}
    assert BackfillRequest.from_options(parsed) == BackfillRequest(dry_run=True, shard="0/2")
    picked = job_options(run_validation, {"sample_rate": 1.0, "seed": 3, "verbosity": 1})
    assert picked == {"sample_rate": 1.0, "seed": 3}


def test_selection_comes_from_the_options() -> None:
    selection = BackfillRequest(tournament_id=4, start_id=10).selection()
    assert (selection.tournament_id, selection.start_id, selection.end_id) == (4, 10, None)


def test_site_from_env_applies_overrides(tmp_path: Path) -> None:
    settings = Site.from_env(str(tmp_path), "sqlite:///x.sqlite3").settings()
    assert str(settings.media_root) == str(tmp_path)
    assert settings.catalog_url == "sqlite:///x.sqlite3"


def test_first_signal_sets_stop_and_notifies_then_handlers_are_restored() -> None:
    stop = threading.Event()
    said: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(stop, said.append):
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)
    assert stop.is_set() and "SIGTERM received" in said[0]
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_first_signal_is_graceful_even_when_the_run_stopped_itself() -> None:
    """The backfill's --max-consecutive-errors sets ``stop`` itself; the operator's first
    Ctrl-C after that must not be taken for a second one (which aborts at once)."""
    stop = threading.Event()
    said: list[str] = []
    with stop_on_signals(stop, said.append):
        stop.set()  # the run stopped taking work on its own
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        handler(signal.SIGINT, None)  # graceful: no KeyboardInterrupt
        assert "SIGINT received" in said[0]
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGINT, None)  # the second one aborts
