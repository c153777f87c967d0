"""``certstore backfill`` through the CLI (in process, real endpoint over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from certstore._progress import LineProgress, format_eta
from certstore.catalog import Catalog, Selection, import_tree
from certstore.cli import main
from certstore.resume import ResumeToken
from pytest_certstore.moto_server import free_port
from tests.certstore.test_backfill import s3_listing, write_dataset

pytestmark = pytest.mark.integration


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    media_root: Path,
    moto_endpoint: str,
    http_bucket: str,
) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'cli-catalog.db'}"
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", http_bucket)
    monkeypatch.setenv("CERTSTORE_CATALOG_URL", url)
    monkeypatch.setenv("CERTSTORE_MEDIA_ROOT", str(media_root))
    files = write_dataset(media_root, 24)
    with Catalog(url) as catalog:
        import_tree(catalog, media_root)
    return {"url": url, "files": files, "bucket": http_bucket}


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)


def test_real_run_refuses_without_the_flag(
    env: dict[str, Any], http_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill"]) == 2
    err = capsys.readouterr().err
    assert "CERT_S3_BACKFILL_ENABLED" in err and "--dry-run" in err
    assert s3_listing(http_client, env["bucket"]) == {}


@pytest.mark.parametrize("value", ["false", "0", "off"])
def test_flag_off_values_refuse(
    env: dict[str, Any], value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", value)
    assert main(["backfill"]) == 2


def test_a_flag_turned_off_in_the_flags_file_is_named_there(
    env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The environment says true, the flags file (which wins) says false: the message must
    send the operator to the file, not tell them to set a variable that is already set."""
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_BACKFILL_ENABLED = false\n")
    monkeypatch.setenv("CERTSTORE_FLAGS_FILE", str(flags_file))
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    assert main(["backfill"]) == 2
    err = capsys.readouterr().err
    assert f"CERT_S3_BACKFILL_ENABLED is false in the flags file {flags_file}" in err
    assert "--dry-run" in err
    assert main(["validate", "--repair"]) == 2
    assert "false in the flags file" in capsys.readouterr().err


def test_bad_flag_value_is_named(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "maybe")
    assert main(["backfill"]) == 2
    assert "CERT_S3_BACKFILL_ENABLED='maybe'" in capsys.readouterr().err


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_media_root_that_is_not_a_folder_is_refused(
    env: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    http_client: Any,
    capsys: pytest.CaptureFixture[str],
    dry_run: bool,
) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for root, words in ((tmp_path / "unmounted", "does not exist"), (a_file, "is not a folder")):
        monkeypatch.setenv("CERTSTORE_MEDIA_ROOT", str(root))
        assert main(["backfill", "--dry-run"] if dry_run else ["backfill"]) == 2
        assert f"media root {root} {words}" in capsys.readouterr().err
    assert s3_listing(http_client, env["bucket"]) == {}
    with Catalog(env["url"]) as catalog:
        assert catalog.count(state="migrated") == 0


def test_dry_run_needs_no_flag_and_writes_nothing(
    env: dict[str, Any], http_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with Catalog(env["url"]) as catalog:
        before = list(catalog.iter_rows())
    assert main(["backfill", "--dry-run", "--json"]) == 0
    report = _json(capsys)
    assert report["dry_run"] is True and report["found"] == len(env["files"])
    assert report["would_migrate"] == len(env["files"]) and report["migrated"] == 0
    with Catalog(env["url"]) as catalog:
        assert list(catalog.iter_rows()) == before
        assert catalog.load_checkpoint(Selection().fingerprint()) is None
    assert s3_listing(http_client, env["bucket"]) == {}


def test_dry_run_does_not_create_a_missing_catalog(
    tmp_path: Path, media_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "never.db"
    args = ["--media-root", str(media_root), "--catalog", f"sqlite:///{path}"]
    assert main(["backfill", "--dry-run", *args]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not path.exists()


def test_filter_options_select_rows(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Catalog(env["url"]) as catalog, catalog.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE certificates SET tournament_id = 7 WHERE id <= 6")
    assert main(["backfill", "--dry-run", "--start-id", "3", "--end-id", "10", "--json"]) == 0
    ranged = _json(capsys)
    assert ranged["found"] == 8 and ranged["filters"]["start_id"] == 3
    assert ranged["start_position"] == 2 and ranged["last_id"] == 10
    assert main(["backfill", "--dry-run", "--tournament-id", "7", "--json"]) == 0
    assert _json(capsys)["found"] == 6
    assert main(["backfill", "--dry-run", "--shard", "1/4", "--json"]) == 0
    assert _json(capsys)["found"] == len([i for i in range(1, len(env["files"]) + 1) if i % 4 == 1])
    assert main(["backfill", "--dry-run", "--no-verify-hash", "--limit", "3", "--json"]) == 0
    limited = _json(capsys)
    assert limited["found"] == 3 and limited["last_id"] == 3
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    assert (
        main(["backfill", "--verify-method", "head", "--engine", "boto3", "--limit", "4", "--json"])
        == 0
    )
    assert _json(capsys)["verified_by"] == {"head": 4}


def test_real_run_with_default_engine_then_idempotent(
    env: dict[str, Any],
    http_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    assert main(["backfill", "--batch-size", "5", "--workers", "4"]) == 0
    captured = capsys.readouterr()
    assert f"Migrated (verified): {len(env['files'])}" in captured.out
    assert captured.out.strip().splitlines()[-1].startswith("RESUME_TOKEN ")
    assert "BACKFILL progress" in captured.err
    assert set(s3_listing(http_client, env["bucket"])) == set(env["files"])
    assert main(["backfill", "--json"]) == 0
    again = _json(capsys)
    assert again["migrated"] == 0 and again["found"] == 0
    assert again["skipped"]["already_migrated"] == len(env["files"])
    assert main(["catalog", "stats", "--json"]) == 0
    stats = _json(capsys)
    assert stats["migrated"] == stats["verified"] == len(env["files"])


def test_limit_resume_and_token_through_the_cli(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    total = len(env["files"])
    assert main(["backfill", "--limit", "5", "--engine", "boto3", "--json"]) == 0
    first = _json(capsys)
    assert first["migrated"] == 5 and first["last_id"] == 5
    assert main(["backfill", "--resume", "--limit", "5", "--json"]) == 0
    second = _json(capsys)
    assert second["started_from"] == "checkpoint" and second["start_position"] == 5
    assert second["migrated"] == 5
    assert (
        main(
            [
                "backfill",
                "--resume-token",
                second["resume_token"],
                "--limit",
                "4",
                "--batch-size",
                "2",
                "--json",
            ]
        )
        == 0
    )
    third = _json(capsys)
    assert third["started_from"] == "token" and third["start_position"] == 10
    assert third["migrated"] == 4
    assert main(["backfill", "--resume", "--json"]) == 0
    assert _json(capsys)["migrated"] == total - 14


def test_token_problems_are_usage_errors(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    token = ResumeToken.for_selection(Selection(tournament_id=3), 2).encode()
    assert main(["backfill", "--resume-token", token, "--tournament-id", "4"]) == 2
    assert "tournament_id=3" in capsys.readouterr().err
    assert main(["backfill", "--dry-run", "--resume-token", "not-a-token"]) == 2
    assert "not a certstore resume token" in capsys.readouterr().err
    assert main(["backfill", "--dry-run", "--resume-token", token[:-4]]) == 2
    assert "--resume-token" in capsys.readouterr().err
    assert main(["backfill", "--dry-run", "--resume", "--resume-token", token]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["backfill", "--dry-run", "--shard", "2/2"]) == 2
    assert "--shard" in capsys.readouterr().err
    # A token alone carries its filters: only tournament 3 is looked at.
    assert main(["backfill", "--dry-run", "--resume-token", token, "--json"]) == 0
    assert _json(capsys)["filters"]["tournament_id"] == 3


def test_a_dry_runs_token_cannot_start_a_real_run(
    env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    http_client: Any,
) -> None:
    """A dry run migrates nothing: a real run started from its position would skip every
    pending row before it and record the skip in its checkpoint."""
    assert main(["backfill", "--dry-run", "--limit", "3", "--json"]) == 0
    token = _json(capsys)["resume_token"]
    assert ResumeToken.decode(token).dry_run
    assert main(["backfill", "--dry-run", "--resume-token", token, "--json"]) == 0
    assert _json(capsys)["found"] == len(env["files"]) - 3, "a dry run may continue one"
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    assert main(["backfill", "--resume-token", token]) == 2
    assert "comes from a dry run" in capsys.readouterr().err
    assert s3_listing(http_client, env["bucket"]) == {}
    assert main(["backfill", "--limit", "3", "--json"]) == 0
    real = _json(capsys)["resume_token"]
    assert not ResumeToken.decode(real).dry_run
    assert main(["backfill", "--resume-token", real, "--json"]) == 0
    assert _json(capsys)["migrated"] == len(env["files"]) - 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--start-id", str(2**64)], "--start-id 18446744073709551616 is out of range"),
        (["--end-id", str(2**64)], "--end-id 18446744073709551616 is out of range"),
        (["--tournament-id", str(2**64)], "--tournament-id 18446744073709551616 is out"),
        (["--shard", f"0/{2**64}"], "--shard 18446744073709551616 is out of range"),
        (["--batch-size", str(2**64)], "--batch-size 18446744073709551616 must be from 1"),
        (["--start-id", "5", "--end-id", "2"], "the range is empty"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    assert main(["backfill", "--dry-run", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_real_run_never_creates_a_catalog(
    env: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mistyped catalog URL must not become a new empty catalog reported as "0 found"."""
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    typo = tmp_path / "typo.db"
    assert main(["backfill", "--catalog", f"sqlite:///{typo}"]) == 1
    assert "does not exist (run `certstore catalog import` first)" in capsys.readouterr().err
    assert not typo.exists()


def test_errors_exit_1_and_s3_down_is_one_line(
    env: dict[str, Any],
    tmp_path: Path,
    media_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    victim = sorted(k for k in env["files"] if env["files"][k])[0]
    media_root.joinpath(*victim.split("/")).unlink()
    assert main(["backfill", "--engine", "boto3", "--json"]) == 1
    report = _json(capsys)
    assert report["errors"] == {"local_missing": 1}
    assert report["error_details"][0]["key"] == victim

    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_S3_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_S3_CONNECT_TIMEOUT", "0.5")
    with Catalog(env["url"]) as catalog:
        before = catalog.stats()
    assert main(["backfill", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and len(err.strip().splitlines()) == 1
    with Catalog(env["url"]) as catalog:
        assert catalog.stats() == before


def test_progress_lines_have_rate_and_eta() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = LineProgress(lines.append, interval=5.0, clock=lambda: now[0])
    progress.start(87)
    for _ in range(10):
        now[0] += 0.5
        progress.advance()
    assert lines == ["BACKFILL progress 10/87 (11.5%) 2.0 obj/s ETA 38s"]
    progress.close()
    assert len(lines) == 2
    assert format_eta(150) == "2m" and format_eta(3 * 3600 + 300) == "3h05m"
    assert format_eta(None) == "?"


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [
        (6036, 6038, "99.9%"),
        (6038, 6038, "100.0%"),
        (1, 10_000, "0.1%"),
        (0, 5, "0.0%"),
        (10, 87, "11.5%"),
    ],
)
def test_shares_read_100_percent_only_when_nothing_is_left(
    part: int, whole: int, text: str
) -> None:
    """6,036 of 6,038 migrated printed '100.0%' next to 'pending: 2'."""
    from certstore._progress import percent_text

    assert percent_text(part, whole) == text


def test_progress_keeps_talking_while_nothing_finishes() -> None:
    """S3 down, objects retried: without a heartbeat the log went silent for minutes."""
    import time

    lines: list[str] = []
    progress = LineProgress(lines.append, interval=0.02, heartbeat=True)
    progress.start(5)
    for _ in range(500):  # bounded: at most ~5 s
        if len(lines) >= 2:
            break
        time.sleep(0.01)
    assert len(lines) >= 2
    assert lines[0].startswith("BACKFILL progress 0/5 (0.0%)")
    assert "(waiting: nothing finished for " in lines[0]
    progress.close()
    closed_with = len(lines)
    assert "waiting" not in lines[-1]
    time.sleep(0.1)
    assert len(lines) == closed_with, "no heartbeat after close"


def test_cli_subprocess_through_fault_proxy_migrates_everything(
    s3_fault_proxy: Any, tmp_path: Path, media_root: Path
) -> None:
    """20 % of PUTs answered 503 by a proxy in front of the endpoint, for the real CLI in a
    subprocess with its default engine: retries hide them and every object is migrated."""
    import subprocess
    import sys

    files = write_dataset(media_root, 40)
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    with Catalog(url) as catalog:
        import_tree(catalog, media_root)
    rule = s3_fault_proxy.inject("503", "PutObject", probability=0.2)
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("CERT_S3_", "CERTSTORE_", "AWS_S3_"))
    }
    env.update(
        s3_fault_proxy.env(
            CERTSTORE_CATALOG_URL=url,
            CERTSTORE_MEDIA_ROOT=str(media_root),
            CERT_S3_BACKFILL_ENABLED="true",
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "certstore", "backfill", "--json", "--workers", "4"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["migrated"] == len(files) and report["error_count"] == 0
    assert s3_fault_proxy.fired(rule) >= 3
    with Catalog(url) as catalog:
        assert catalog.stats().verified == len(files)
    listed = {o["Key"] for o in s3_fault_proxy.target.iter_objects()}
    assert listed == {f"certificates/{k}" for k in files}


def test_only_the_console_script_freezes_the_heap(tmp_path: Path, media_root: Path) -> None:
    """The console script freezes what its imports made (its full collections then skip
    them); ``main()`` called by a process that goes on (here: pytest) must not."""
    import gc
    import os
    import subprocess
    import sys

    files = write_dataset(media_root, 3)
    url = f"sqlite:///{tmp_path / 'freeze.db'}"
    with Catalog(url) as catalog:
        import_tree(catalog, media_root)
    args = ["backfill", "--dry-run", "--json", "--catalog", url, "--media-root", str(media_root)]

    before = gc.get_freeze_count()
    assert main(args) == 0
    assert gc.get_freeze_count() == before

    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n"
        f"sys.argv = ['certstore', *{args!r}]\n"
        "from certstore.cli import run\n"
        "run()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERT_S3_", "CERTSTORE_"))}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["found"] == len(files)
    frozen = int(done.stderr.rsplit("frozen ", 1)[1].split()[0])
    assert frozen > 10_000  # SQLAlchemy's modules and classes, at least


def test_heavy_imports_pause_the_collector_only_in_the_console_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The console script imports with the collector paused and freezes what the imports
    made; a process that goes on keeps its collector running and nothing frozen. Either way
    the collector is running again afterwards."""
    import gc

    from certstore.cli import _app

    before = gc.get_freeze_count()
    with _app.heavy_imports():
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == before

    monkeypatch.setattr(_app, "_one_shot", True)
    try:
        with _app.heavy_imports():
            assert not gc.isenabled()
            made_here = [[n] for n in range(100)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + len(made_here)
    finally:
        gc.unfreeze()
        gc.enable()


class FlipFlagAfter:
    """A progress sink that turns the backfill flag off in the flags file after ``after``
    objects: the operator's one-edit rollback, mid-run."""

    def __init__(self, flags_file: Path, after: int) -> None:
        self.flags_file, self.after, self.done = flags_file, after, 0

    def start(self, total: int) -> None:
        pass

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        import os
        import time

        self.done += items
        if self.done == self.after:
            staged = self.flags_file.with_suffix(".new")
            staged.write_text("CERT_S3_BACKFILL_ENABLED = false\n")
            os.replace(staged, self.flags_file)
            stamp = time.time() + 5
            os.utime(self.flags_file, (stamp, stamp))

    def close(self) -> None:
        pass


def test_turning_the_flag_off_in_the_flags_file_stops_a_running_backfill(
    env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    media_root: Path,
) -> None:
    """The runbook's rollback is one edit of the flags file; a backfill already running must
    stop taking new work at its next checkpoint, and a resume finishes the rest later."""
    from certstore.jobs import BackfillRequest, Site, run_backfill
    from certstore.reports import EXIT_FAILURE, backfill_exit_code

    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_BACKFILL_ENABLED = true\n")
    monkeypatch.setenv("CERTSTORE_FLAGS_FILE", str(flags_file))
    monkeypatch.delenv("CERT_S3_BACKFILL_ENABLED", raising=False)
    request = BackfillRequest(batch_size=4, workers=2)
    summary = run_backfill(
        Site.from_env(),
        request,
        progress=FlipFlagAfter(flags_file, after=6),
        notify=lambda _line: None,
    )
    assert "CERT_S3_BACKFILL_ENABLED was turned off" in summary.stopped_reason
    assert backfill_exit_code(summary) == EXIT_FAILURE and not summary.interrupted
    assert 6 <= summary.migrated < len(env["files"]) and summary.error_count == 0
    flags_file.write_text("CERT_S3_BACKFILL_ENABLED = true\n")
    rest = run_backfill(
        Site.from_env(),
        BackfillRequest(resume=True),
        notify=lambda _line: None,
    )
    assert rest.stopped_reason == "" and summary.migrated + rest.migrated == len(env["files"])
    with Catalog(env["url"]) as catalog:
        assert catalog.stats().pending == 0


def test_backfill_and_repair_refuse_to_run_in_phase_3(
    env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    http_client: Any,
) -> None:
    """In phase 3 saves go to S3 only: the local copy of a certificate overwritten since may be
    older than S3's, and a backfill or repair would put it back over the newer one."""
    monkeypatch.setenv("CERT_S3_BACKFILL_ENABLED", "true")
    monkeypatch.setenv("CERT_S3_ONLY", "true")
    assert main(["backfill"]) == 2
    err = capsys.readouterr().err
    assert "CERT_S3_ONLY is on" in err and "a backfill would overwrite newer" in err
    assert s3_listing(http_client, env["bucket"]) == {}
    assert main(["validate", "--repair", "--sample-rate", "1"]) == 2
    assert "a repair would overwrite newer" in capsys.readouterr().err
    assert main(["backfill", "--dry-run", "--json"]) == 0  # reads only: allowed
