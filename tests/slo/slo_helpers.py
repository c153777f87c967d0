"""Helpers of the slo tests: run the real tools (Locust, pytest-benchmark, coverage) bounded and
on loopback, and write specs. The fixtures that use them live in ``conftest.py``."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TINY_LOCUSTFILE = HERE / "data" / "locustfile_tiny.py"
SLO_VERDICT = REPO / "loadtests" / "slo_verdict.py"
BIN = Path(sys.executable).parent


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child tool: no coverage/xdist hooks of the parent run leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COV_CORE_", "COVERAGE_", "PYTEST_", "GITHUB_STEP_SUMMARY"))
    }
    env.update(extra)
    return env


class Handler(http.server.BaseHTTPRequestHandler):
    """``/fast`` 200 at once, ``/slow?ms=N`` 200 after N ms, ``/fail`` 500."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["30"])[0]) / 1000.0)
        status = 500 if url.path == "/fail" else 200
        body = b"ok" if status == 200 else b"boom"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def run_locust(
    host: str,
    prefix: Path,
    *extra: str,
    locustfiles: tuple[Path, ...] = (TINY_LOCUSTFILE,),
    run_time: str = "20s",
    users: int = 4,
    requests: int = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """A bounded headless Locust run writing ``PREFIX_*.csv`` and ``PREFIX.json``.

    The tiny scenario stops itself after ``requests`` requests (about a second here);
    ``run_time`` is only the safety bound.
    """
    command = [
        str(BIN / "locust"),
        "-f",
        ",".join(str(path) for path in locustfiles),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        run_time,
        "--host",
        host,
        "--csv",
        str(prefix),
        "--json-file",
        str(prefix),
        "--only-summary",
        "--loglevel=INFO",
        *extra,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=90,
        env=env or clean_env(SLO_TINY_REQUESTS=str(requests)),
        cwd=prefix.parent,
        check=False,
    )


@dataclass(frozen=True)
class LocustRun:
    """One finished Locust run: its ``--csv``/``--json-file`` prefix and the process result."""

    prefix: Path
    process: subprocess.CompletedProcess[str]


BENCH_TESTS = textwrap.dedent(
    """
    import time

    def test_sleepy(benchmark):
        benchmark.pedantic(time.sleep, args=(0.002,), rounds=30, iterations=1)

    def test_quick(benchmark):
        benchmark.pedantic(sum, args=(range(100),), rounds=50, iterations=5)
    """
)


def run_benchmark(directory: Path, *, saved: bool = False) -> Path:
    """Run pytest-benchmark on two tiny benchmarks and return its JSON.

    ``--benchmark-json`` always includes the raw timings (``stats.data``); ``saved=True`` uses
    ``--benchmark-save`` without ``--benchmark-save-data`` instead, whose file has none.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_tiny_bench.py").write_text(BENCH_TESTS, encoding="utf-8")
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    output = directory / "bench.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-c",
        str(directory / "pytest.ini"),
        "--rootdir",
        str(directory),
        str(directory / "test_tiny_bench.py"),
    ]
    if saved:
        command += ["--benchmark-save=tiny", f"--benchmark-storage=file://{directory / 'store'}"]
    else:
        command.append(f"--benchmark-json={output}")
    process = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory,
        env=clean_env(),
        check=False,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    if saved:
        (output,) = (directory / "store").rglob("*_tiny.json")
    return output


def run_coverage(directory: Path) -> Path:
    """``coverage run`` + ``coverage json`` on a tiny package: ``pkg/full.py`` fully covered,
    ``pkg/half.py`` partly. Returns the report's path."""
    package = directory / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "full.py").write_text("def one():\n    return 1\n", encoding="utf-8")
    (package / "half.py").write_text(
        "def used():\n    return 1\n\n\ndef unused():\n    a = 1\n    b = 2\n    return a + b\n",
        encoding="utf-8",
    )
    (directory / "main.py").write_text(
        "from pkg.full import one\nfrom pkg.half import used\nassert one() + used() == 2\n",
        encoding="utf-8",
    )
    (directory / ".coveragerc").write_text("[run]\nsource = pkg\n", encoding="utf-8")
    for command in (
        [sys.executable, "-m", "coverage", "run", "--rcfile=.coveragerc", "main.py"],
        [sys.executable, "-m", "coverage", "json", "--rcfile=.coveragerc", "-o", "coverage.json"],
    ):
        process = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=directory,
            env=clean_env(),
            check=False,
        )
        assert process.returncode == 0, process.stdout + process.stderr
    return directory / "coverage.json"


PLUGIN_TESTS = textwrap.dedent(
    """
    import pytest

    @pytest.mark.slo(p95_ms=1000, min_samples=20)
    def test_fast(slo_sampler):
        for ms in range(1, 41):
            slo_sampler.record(float(ms))

    @pytest.mark.slo(p95_ms=1000, error_rate=0.5, min_samples=20)
    def test_flaky(slo_sampler):
        for index in range(20):
            slo_sampler.record(5.0, ok=index % 4 != 0)

    @pytest.mark.slo(p95_ms=1, min_samples=5)
    def test_too_slow(slo_sampler):
        with slo_sampler.measure():
            sum(range(10))
    """
)


def run_plugin_report(
    directory: Path, *extra: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run three ``@pytest.mark.slo`` tests under the certstore plugin with ``--slo-report``
    (mode ``report``, so the misses are recorded but do not fail the run)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_plugin_slo.py").write_text(PLUGIN_TESTS, encoding="utf-8")
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    report = directory / "slo-report.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(directory / "pytest.ini"),
        "--rootdir",
        str(directory),
        f"--slo-report={report}",
        "--slo-mode=report",
        *extra,
        str(directory / "test_plugin_slo.py"),
    ]
    process = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory,
        env=clean_env(),
        check=False,
    )
    return report, process


def write_spec(directory: Path, text: str, name: str = "slo.toml") -> Path:
    """Write a spec file from dedented TOML text."""
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path
