"""Fixtures for the Locust scenario tests: a real service subprocess and a Locust runner.

Locust monkey-patches whatever process imports it, so it never runs inside pytest: every run is
a subprocess (``locust ... --headless -t`` plus a subprocess timeout), and its results are read
back from the CSV it writes.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_certstore.moto_server import free_port

REPO = Path(__file__).resolve().parents[2]
LOADTESTS = REPO / "loadtests"
TOKEN = "loadtest-token-9d41"
#: Hard ceiling for one Locust subprocess (its own -t is a few seconds).
LOCUST_TIMEOUT = 60


def console_script(name: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    if name == "locust":
        return [sys.executable, "-m", "locust"]
    return [
        sys.executable,
        "-c",
        "import sys; from certstore.cli import main; sys.exit(main(sys.argv[1:]))",
    ]


@dataclass
class Service:
    """A running ``certstore serve`` and the environment that points at its S3."""

    base: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    plan: Any = None  # the FaultPlan between the service and S3, when there is a proxy

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=5) as response:
            return response.read().decode()


def base_env(s3_endpoint: str, bucket: str, media: Path, **extra: str) -> dict[str, str]:
    """The environment for the service and the storage scenario (phase 2 by default)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CERT_S3_", "CERTSTORE_", "AWS_S3_", "AWS_STORAGE_"))
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_ENDPOINT_URL": s3_endpoint,
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_S3_MAX_ATTEMPTS": "1",
            "AWS_S3_CONNECT_TIMEOUT": "2",
            "AWS_S3_READ_TIMEOUT": "5",
            "CERT_S3_DUAL_WRITE": "true",
            "CERT_S3_READ_PRIMARY": "true",
            "CERTSTORE_API_TOKEN": TOKEN,
            "CERTSTORE_MEDIA_ROOT": str(media),
        }
    )
    env.update(extra)
    return env


@contextmanager
def running_service(env: dict[str, str], workdir: Path) -> Iterator[Service]:
    """``certstore serve`` on a free port, healthy, stopped (SIGTERM) afterwards."""
    port = free_port()
    log = workdir / f"service-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*console_script("certstore"), "serve", "--port", str(port), "--no-access-log"],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"service not healthy:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        yield Service(base, env, process, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def create_bucket(endpoint: str) -> str:
    import boto3

    bucket = f"load-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    return bucket


@dataclass
class LocustRun:
    """A finished Locust subprocess and its statistics by ``(type, name)``."""

    returncode: int
    output: str
    stats: dict[tuple[str, str], dict[str, Any]]

    def summary(self) -> str:
        """Exit code, request/failure counts and the log lines worth reading (for asserts)."""
        counts = {
            f"{k[0]} {k[1]}": (v["Request Count"], v["Failure Count"])
            for k, v in self.stats.items()
        }
        lines = [
            line
            for line in self.output.splitlines()
            if any(w in line for w in ("spawned", "ERROR", "Error", "seeded", "exit code"))
        ]
        return f"exit {self.returncode}; counts {counts}\n" + "\n".join(lines[-20:])

    def requests(self, kind: str, name: str) -> int:
        return int(self.stats.get((kind, name), {}).get("Request Count", 0))

    def failures(self, kind: str, name: str) -> int:
        return int(self.stats.get((kind, name), {}).get("Failure Count", 0))


def read_stats(csv_prefix: Path) -> dict[tuple[str, str], dict[str, Any]]:
    path = Path(f"{csv_prefix}_stats.csv")
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(handle)}


def run_locust(
    files: list[str],
    *,
    host: str | None,
    env: dict[str, str],
    out: Path,
    users: int = 2,
    run_time: str = "2s",
    extra: tuple[str, ...] = (),
) -> LocustRun:
    """``locust -f FILES --headless`` bounded by ``-t`` and :data:`LOCUST_TIMEOUT`."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    command = [
        *console_script("locust"),
        "-f",
        ",".join(str(LOADTESTS / f) for f in files),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users * 10),
        "-t",
        run_time,
        "--csv",
        str(prefix),
        "--json-file",
        str(prefix),
        "--stop-timeout",
        "3",
        "--cert-count",
        "10",
        "--cert-size-kb",
        "4",
        "--exit-code-on-error",
        "1",
        *extra,
    ]
    if host:
        command += ["--host", host]
    result = subprocess.run(command, env=env, cwd=out, capture_output=True, timeout=LOCUST_TIMEOUT)
    output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    (out / "locust-output.txt").write_text(output)
    return LocustRun(result.returncode, output, read_stats(prefix))


@pytest.fixture(scope="module")
def healthy_service(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One phase-2 service per module on the session's moto server."""
    workdir = tmp_path_factory.mktemp("service")
    env = base_env(moto_endpoint, create_bucket(moto_endpoint), workdir / "media")
    with running_service(env, workdir) as service:
        yield service


@pytest.fixture
def faulty_service(moto_endpoint: str, tmp_path: Path) -> Iterator[Service]:
    """A phase-2 service that reaches S3 through the plugin's fault proxy; the test adds
    rules to ``service.plan`` after seeding."""
    from pytest_certstore.fault_proxy import FaultProxy
    from pytest_certstore.faults import FaultPlan

    plan = FaultPlan(seed=7)
    with FaultProxy(moto_endpoint, plan, max_connections=128) as proxy:
        env = base_env(proxy.url, create_bucket(moto_endpoint), tmp_path / "media")
        with running_service(env, tmp_path) as service:
            service.plan = plan
            yield service
