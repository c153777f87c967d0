from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from certstore.cli import EXIT_NOT_FOUND, EXIT_USAGE, main

CLI = [sys.executable, "-m", "certstore"]


@pytest.fixture
def cli_env(moto_endpoint: str, http_bucket: str, media_root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_S3_ENDPOINT_URL": moto_endpoint,
        "AWS_STORAGE_BUCKET_NAME": http_bucket,
        "CERTSTORE_MEDIA_ROOT": str(media_root),
    }


def run(
    args: list[str], env: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, *args], env=env, input=stdin, capture_output=True, timeout=60, check=False
    )


def test_put_get_url_rm_through_the_router(
    cli_env: dict[str, str], tmp_path: Path, http_client: Any, http_bucket: str
) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(b"%PDF-1.4 cli")
    env = {**cli_env, "CERT_S3_DUAL_WRITE": "true", "CERT_S3_READ_PRIMARY": "true"}
    put = run(["put", "Curaçao/a.pdf", str(source)], env)
    assert put.returncode == 0, put.stderr
    assert put.stdout.decode().strip() == "Curaçao/a.pdf"
    head = http_client.head_object(Bucket=http_bucket, Key="certificates/Curaçao/a.pdf")
    assert head["ContentLength"] == len(b"%PDF-1.4 cli")
    got = run(["get", "Curaçao/a.pdf"], env)
    assert got.stdout == b"%PDF-1.4 cli"
    url = run(["url", "Curaçao/a.pdf", "--expires", "60"], env)
    assert "X-Amz-Expires=60" in url.stdout.decode()
    stat = json.loads(run(["stat", "Curaçao/a.pdf"], env).stdout)
    assert stat["size"] == len(b"%PDF-1.4 cli") and stat["phase"] == "2 read-primary"
    assert run(["rm", "Curaçao/a.pdf"], env).returncode == 0
    missing = run(["get", "Curaçao/a.pdf"], env)
    assert missing.returncode == EXIT_NOT_FOUND
    assert b"not found" in missing.stderr


def test_stdin_put_with_flags_off_stays_local(cli_env: dict[str, str], media_root: Path) -> None:
    assert run(["put", "a.pdf", "-"], cli_env, stdin=b"%PDF").returncode == 0
    assert (media_root / "a.pdf").read_bytes() == b"%PDF"
    assert run(["url", "a.pdf"], cli_env).stdout.decode().strip() == "/media/a.pdf"


@pytest.mark.parametrize(
    ("env", "args", "needle"),
    [
        ({"CERT_S3_DUAL_WRITE": "maybe"}, ["put", "a.pdf", "-"], "CERT_S3_DUAL_WRITE='maybe'"),
        ({}, ["get", "../etc/passwd"], "contains a '..' segment"),
        ({"AWS_QUERYSTRING_EXPIRE": "-5"}, ["url", "a.pdf"], "AWS_QUERYSTRING_EXPIRE='-5'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    env: dict[str, str],
    args: list[str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    media_root: Path,
) -> None:
    monkeypatch.setenv("CERTSTORE_MEDIA_ROOT", str(media_root))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_flags_shows_values_and_sources(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_DUAL_WRITE = true\n")
    monkeypatch.setenv("CERTSTORE_FLAGS_FILE", str(flags_file))
    monkeypatch.setenv("CERT_S3_READ_PRIMARY", "true")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "supersecretvalue1234")
    assert main(["flags", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["settings"]
    assert data["CERT_S3_DUAL_WRITE"] == {"value": "true", "source": "flags file"}
    assert data["CERT_S3_READ_PRIMARY"] == {"value": "true", "source": "env"}
    assert data["CERT_S3_ONLY"] == {"value": "false", "source": "default"}
    assert data["AWS_SECRET_ACCESS_KEY"]["value"] == "****1234"
    assert main(["flags"]) == 0
    table = capsys.readouterr().out
    assert "CERT_S3_DUAL_WRITE" in table and "flags file" in table
    assert "supersecret" not in table


def _replace_flags_file(path: Path, text: str, stamp: float) -> None:
    """What a deploy tool does: write a sibling, then rename over the file. (A write in place
    is seen empty by a watcher that reads between the truncation and the write.)"""
    staged = path.with_suffix(".staged")
    staged.write_text(text)
    os.utime(staged, (stamp, stamp))
    os.replace(staged, path)


def test_flags_watch_sees_a_flags_file_edit_without_restart(tmp_path: Path) -> None:
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_DUAL_WRITE = true\nCERT_S3_READ_PRIMARY = true\n")
    env = {**os.environ, "CERTSTORE_FLAGS_FILE": str(flags_file)}
    process = subprocess.Popen(
        [*CLI, "flags", "--watch", "--interval", "0.05", "--duration", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        while line and not line.startswith("watching:"):
            line = process.stdout.readline()
        assert "read_primary=true" in line
        stamp = time.time() + 5
        _replace_flags_file(
            flags_file, "CERT_S3_DUAL_WRITE = true\nCERT_S3_READ_PRIMARY = false\n", stamp
        )
        changed = process.stdout.readline()
        assert changed.startswith("changed:"), changed
        assert "read_primary=false" in changed and "phase='1 shadow'" in changed
        # A typo is reported and the watch goes on: the fix is the next line it prints.
        _replace_flags_file(flags_file, "CERT_S3_DUAL_WRITE = maybe\n", stamp + 5)
        assert process.stderr is not None
        invalid = process.stderr.readline()
        assert invalid.startswith("invalid: ") and "CERTSTORE_FLAGS_FILE" in invalid, invalid
        _replace_flags_file(flags_file, "CERT_S3_DUAL_WRITE = false\n", stamp + 10)
        fixed = process.stdout.readline()
        assert fixed.startswith("fixed:") and "dual_write=false" in fixed, fixed
        assert process.poll() is None, "still watching"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_after_obstore_the_cli_runs_exit_handlers_then_exits_without_finalizing() -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handlers ran', flush=True))\n"
        "import obstore  # its Tokio runtime is what makes finalizing unsafe\n"
        "sys.argv = ['certstore', 'flags', '--json']\n"
        "from certstore.cli import run\n"
        "run()\n"
        "print('unreachable')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert '"settings"' in result.stdout
    assert result.stdout.rstrip().endswith("exit handlers ran")
    assert "unreachable" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["rehearse", "--size-kb", "nan"],
        ["rehearse", "--time-limit", "inf"],
        ["rehearse", "--inject-faults", "nan"],
        ["backfill", "--dry-run", "--progress-interval", "nan"],
        ["flags", "--watch", "--interval", "nan"],
        ["serve", "--exists-ttl", "nan"],
    ],
)
def test_non_finite_numbers_are_usage_errors(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """nan passes every bound check (each comparison is False): it silenced progress lines
    and crashed the rehearsal with a traceback."""
    assert main(args) == 2
    assert "is not a finite number" in capsys.readouterr().err
