"""End to end: S3 latency injected under the real service makes the gate fail on the download p95.

The certificate service (``certstore serve``) runs as its own process with its S3 endpoint
pointed at the plugin's fault proxy in front of the moto server. Locust runs the real download
scenario (``loadtests/downloads.py``: the service's 302, then the presigned GET on S3) and
``slo gate`` judges the Locust output against the shipped ``slo.toml``'s download objective.
First without faults (the objective passes: the gate can pass), then with 600 ms added to every
``HeadObject``/``GetObject`` — both legs of a download — so the download p95 must miss its
500 ms target and the gate must exit 1 naming ``download.p95_ms``.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_certstore.fault_proxy import FaultProxy
from pytest_certstore.faults import FaultPlan, FaultRule
from pytest_certstore.moto_server import free_port
from slo import EXIT_FAIL, EXIT_PASS, load_spec
from slo.cli import main
from tests.slo.slo_helpers import BIN, REPO, SLO_VERDICT, clean_env, write_spec

pytestmark = pytest.mark.integration

INJECTED_MS = 600
TOKEN = "slo-e2e-token"


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """The fault proxy in front of the moto server, with no rule yet."""
    with FaultProxy(moto_endpoint, FaultPlan()) as running:
        yield running


@pytest.fixture
def service(proxy: FaultProxy, http_client: Any, tmp_path: Path) -> Iterator[str]:
    """``certstore serve`` (read-primary) whose S3 endpoint is the fault proxy."""
    bucket = f"slo-e2e-{uuid.uuid4().hex[:10]}"
    http_client.create_bucket(Bucket=bucket)
    port = free_port()
    env = clean_env(
        AWS_S3_ENDPOINT_URL=proxy.url,
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        CERT_S3_DUAL_WRITE="true",
        CERT_S3_READ_PRIMARY="true",
        CERTSTORE_MEDIA_ROOT=str(tmp_path / "media"),
        CERTSTORE_API_TOKEN=TOKEN,
    )
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "certstore"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "the service did not become healthy:\n"
                    + (tmp_path / "service.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _download_spec(directory: Path) -> Path:
    """The shipped download objective, with a min_samples a short test run reaches."""
    shipped = load_spec(REPO / "slo.toml").scenario("download")
    target = shipped.limits["p95_ms"]
    return write_spec(
        directory,
        f"""
        [scenarios.download]
        source = "locust"
        request_type = {json.dumps(shipped.request_type)}
        name = {json.dumps(shipped.request_name)}
        p95_ms = {target}
        min_samples = 10
        """,
    )


def _run_downloads(service: str, prefix: Path) -> subprocess.CompletedProcess[str]:
    """12 users paced at 2 downloads/s each for 5 s: enough samples, no CPU saturation."""
    return subprocess.run(
        [
            str(BIN / "locust"),
            "-f",
            f"{REPO / 'loadtests' / 'downloads.py'},{SLO_VERDICT}",
            "--headless",
            "-u",
            "12",
            "-r",
            "12",
            "-t",
            "5s",
            "--user-rps",
            "2",
            "--host",
            service,
            "--cert-count",
            "10",
            "--cert-size-kb",
            "4",
            "--csv",
            str(prefix),
            "--json-file",
            str(prefix),
            "--only-summary",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(CERTSTORE_API_TOKEN=TOKEN),
        cwd=prefix.parent,
        check=False,
    )


def test_injected_s3_latency_fails_the_download_objective(
    service: str,
    proxy: FaultProxy,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = _download_spec(tmp_path)

    healthy = _run_downloads(service, tmp_path / "healthy")
    assert (tmp_path / "healthy.json").is_file(), healthy.stderr[-3000:]
    assert main(["gate", "--spec", str(spec), "--locust", str(tmp_path / "healthy")]) == (
        EXIT_PASS
    ), capsys.readouterr().out
    capsys.readouterr()

    proxy.plan.add(
        FaultRule(
            f"latency:{INJECTED_MS}ms", operations=("HeadObject", "GetObject"), name="slow S3 reads"
        )
    )
    slow = _run_downloads(service, tmp_path / "slow")
    assert (tmp_path / "slow.json").is_file(), slow.stderr[-3000:]
    code = main(
        [
            "gate",
            "--spec",
            str(spec),
            "--locust",
            str(tmp_path / "slow"),
            "--out-dir",
            str(tmp_path / "out"),
            "--no-png",
        ]
    )
    printed = capsys.readouterr().out
    assert code == EXIT_FAIL, printed
    assert "FAIL: download.p95_ms:" in printed, printed
    assert "is above the target 500.0 ms" in printed
    verdict = json.loads((tmp_path / "out" / "slo-verdict.json").read_text(encoding="utf-8"))
    (objective,) = verdict["objectives"]
    assert objective["status"] == "FAIL" and objective["measured"] >= INJECTED_MS
    # The injected latency really happened at the S3 endpoint, not just in a fake.
    faulted = [call for call in proxy.calls if f"latency:{INJECTED_MS}ms" in call.effects]
    assert {call.operation for call in faulted} == {"HeadObject", "GetObject"}, proxy.calls[:5]
