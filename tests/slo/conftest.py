"""Fixtures for the slo tests: a loopback HTTP server and real runs of the tools the gate reads.

Every reader is tested on output produced here by the real tool — a short Locust run, a
pytest-benchmark run, a coverage run — not only on hand-written files. The runs are bounded
(Locust by request count and ``-t``, pytest-benchmark by fixed rounds) and talk only to 127.0.0.1.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slo.slo_helpers import (
    Handler,
    LocustRun,
    run_benchmark,
    run_coverage,
    run_locust,
    run_plugin_report,
)


@pytest.fixture(scope="session")
def tiny_server() -> Iterator[str]:
    """A threaded HTTP server on a free loopback port (see :class:`slo_helpers.Handler`)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def locust_run(tiny_server: str, tmp_path_factory: pytest.TempPathFactory) -> LocustRun:
    """One real Locust run of the tiny scenario, 300 requests (shared by the reader tests)."""
    prefix = tmp_path_factory.mktemp("locust") / "run"
    process = run_locust(tiny_server, prefix)
    assert (prefix.parent / "run.json").is_file(), process.stderr[-2000:]
    assert (prefix.parent / "run_stats.csv").is_file(), process.stderr[-2000:]
    return LocustRun(prefix, process)


@pytest.fixture(scope="session")
def benchmark_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``--benchmark-json`` document (it carries the raw timings)."""
    return run_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="session")
def benchmark_json_summary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``--benchmark-save`` file without raw timings (no ``--benchmark-save-data``)."""
    return run_benchmark(tmp_path_factory.mktemp("bench_summary"), saved=True)


@pytest.fixture(scope="session")
def coverage_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``coverage json`` report (see :func:`slo_helpers.run_coverage`)."""
    return run_coverage(tmp_path_factory.mktemp("cov"))


@pytest.fixture(scope="session")
def plugin_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``--slo-report`` written by the certstore plugin (serial: the plugin's own tests
    prove the xdist merge; ci/release-gate.sh writes its report from the ``latency`` tests run
    alone)."""
    report, process = run_plugin_report(tmp_path_factory.mktemp("plugin"))
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert report.is_file(), process.stdout[-3000:]
    return report
