"""What an S3 fixture costs per test: the plugin's fixtures against the common patterns.

For each fixture pattern this writes a pytest file of N tests (each test gets its own fresh
bucket, puts one 50 KiB object and gets it back) into a temporary directory and runs pytest on
it in a subprocess. A hook in the generated conftest stamps the wall clock and the process's CPU
time as each test's whole run protocol ends (setup, call, teardown and pytest's own reporting).
The cost per test is the time from the end of the first test to the end of the last-but-one,
divided by the number of tests in between: interpreter start, imports, collection, session
fixtures (moto server start, client creation; paid by the first test) and session teardown
(paid by the last) stay out, everything a test costs in a long run stays in. Wall time is the
figure (and the ratios); CPU time is printed too because on a loaded machine it is the steadier
of the two.

Patterns, fastest expected first:

* ``dict_fake``          an in-memory dict with put/get (the floor: no boto3 at all);
* ``s3``                 the plugin's fast fake (FakeS3 behind a real boto3 client);
* ``s3_moto``            one in-process ``mock_aws`` per session, client built once;
* ``s3_server``          moto's server over HTTP on 127.0.0.1, started once per session;
* ``mock_aws_per_test``  ``with mock_aws():`` and a new client in every test (the common
                         pattern, and the reference every ``*_ratio`` divides by).

Usage: ``python benchmarks/fixture_overhead.py [--tests 200] [--repeat 1] [--json PATH]
[--fixtures auto|plugin|standalone]``. With ``plugin`` (the default when
``pytest_certstore.plugin`` defines ``s3``, ``s3_moto`` and ``s3_server``) the generated tests
use the plugin's own fixtures; ``standalone`` uses equivalent fixtures defined in the generated
conftest (FakeS3 + BucketPool, a session mock, a session moto server).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

FORMAT_VERSION = 1
REFERENCE = "mock_aws_per_test"
FLOOR = "dict_fake"
TARGET_S3_MS = 3.0
PLUGIN_FIXTURES = ("s3", "s3_moto", "s3_server")

_COMMON = """
import json
import os
import time

import pytest

_STAMPS = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    yield
    _STAMPS.append((time.perf_counter(), time.process_time()))


def pytest_sessionfinish(session):
    with open(os.environ["FIXTURE_OVERHEAD_STAMPS"], "w") as out:
        json.dump(_STAMPS, out)
"""
_TEST_HEADER = """
import os

DATA = os.urandom(50 * 1024)
"""

#: Fixtures taken from the plugin: the test's ``bench_target`` is (client, bucket).
_PLUGIN = {
    "s3": """
@pytest.fixture
def bench_target(s3):
    return s3.client, s3.bucket
""",
    "s3_moto": """
@pytest.fixture
def bench_target(s3_moto):
    return s3_moto.client, s3_moto.bucket
""",
    "s3_server": """
@pytest.fixture
def bench_target(s3_server):
    return s3_server.client, s3_server.bucket
""",
}

#: Equivalent fixtures without the plugin (used before it existed, and with --fixtures
#: standalone to compare).
_STANDALONE = {
    "s3": """
import boto3
from botocore.config import Config
from pytest_certstore.fake_s3 import BucketPool, FakeS3

@pytest.fixture(scope="session")
def _fake():
    fake = FakeS3()
    client = fake.attach(boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(signature_version="s3v4")))
    return fake, client, BucketPool("bench")

@pytest.fixture
def bench_target(_fake):
    fake, client, pool = _fake
    name = pool.acquire()
    fake.create_bucket(name, replace=True)
    yield client, name
    fake.delete_bucket(name)
    pool.release(name)
""",
    "s3_moto": """
import itertools
import boto3
from moto import mock_aws

_names = itertools.count()

@pytest.fixture(scope="session")
def _moto_client():
    with mock_aws():
        yield boto3.session.Session().client("s3", region_name="us-east-1")

@pytest.fixture
def bench_target(_moto_client):
    name = f"bench-{next(_names)}"
    _moto_client.create_bucket(Bucket=name)
    yield _moto_client, name
    for item in _moto_client.list_objects_v2(Bucket=name).get("Contents", []):
        _moto_client.delete_object(Bucket=name, Key=item["Key"])
    _moto_client.delete_bucket(Bucket=name)
""",
    "s3_server": """
import itertools
import boto3
from botocore.config import Config
from pytest_certstore.moto_server import MotoServer

_names = itertools.count()

@pytest.fixture(scope="session")
def _server_client():
    with MotoServer() as server:
        yield boto3.session.Session().client(
            "s3", region_name="us-east-1", endpoint_url=server.url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}))

@pytest.fixture
def bench_target(_server_client):
    name = f"bench-{next(_names)}"
    _server_client.create_bucket(Bucket=name)
    yield _server_client, name
    for item in _server_client.list_objects_v2(Bucket=name).get("Contents", []):
        _server_client.delete_object(Bucket=name, Key=item["Key"])
    _server_client.delete_bucket(Bucket=name)
""",
}

#: Patterns that never use the plugin.
_OWN = {
    "mock_aws_per_test": """
import boto3
from moto import mock_aws

@pytest.fixture
def bench_target():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        yield client, "bench"
""",
    "dict_fake": '''
import io

class DictS3:
    """The floor: the same calls answered from a dict, no boto3."""

    def __init__(self):
        self.buckets = {}

    def create_bucket(self, Bucket):
        self.buckets[Bucket] = {}

    def put_object(self, Bucket, Key, Body):
        self.buckets[Bucket][Key] = bytes(Body)
        return {"ETag": '"x"'}

    def get_object(self, Bucket, Key):
        return {"Body": io.BytesIO(self.buckets[Bucket][Key])}

@pytest.fixture
def bench_target():
    client = DictS3()
    client.create_bucket(Bucket="bench")
    return client, "bench"
''',
}

_TEST = """
def test_{index}(bench_target):
    client, bucket = bench_target
    client.put_object(Bucket=bucket, Key="certificates/{index}.pdf", Body=DATA)
    got = client.get_object(Bucket=bucket, Key="certificates/{index}.pdf")["Body"].read()
    assert got == DATA
"""

ORDER = ("dict_fake", "s3", "s3_moto", "s3_server", "mock_aws_per_test")

#: Third-party plugins unrelated to S3 that this venv autoloads, disabled in the generated
#: runs: their per-session costs (hypothesis imports itself for its terminal summary, seconds
#: on a loaded machine; locust imports gevent) cancel out of the difference of two walls
#: but add noise to it.
_QUIET_PLUGINS = (
    "no:hypothesispytest",
    "no:locust",
    "no:django",
    "no:benchmark",
    "no:anyio",
    "no:pytest_cov",
    "no:cacheprovider",
)


def plugin_available() -> bool:
    """Whether ``pytest_certstore.plugin`` defines the fixtures this benchmark can use."""
    try:
        import pytest_certstore.plugin as plugin
    except ImportError:
        return False
    return all(callable(getattr(plugin, name, None)) for name in PLUGIN_FIXTURES)


def conftest_for(pattern: str, source: str) -> str:
    """The generated conftest for one pattern (``source``: plugin or standalone)."""
    if pattern in _OWN:
        body = _OWN[pattern]
    else:
        body = (_PLUGIN if source == "plugin" else _STANDALONE)[pattern]
    return textwrap.dedent(_COMMON) + textwrap.dedent(body)


def _environment() -> dict[str, str]:
    prefixes = ("AWS_", "CERT_S3_", "CERTSTORE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def run_once(directory: Path, pattern: str, source: str, tests: int) -> tuple[float, float]:
    """Write the files, run pytest; returns (wall ms per test, CPU ms per test).

    Raises if any test fails.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conftest.py").write_text(conftest_for(pattern, source), encoding="utf-8")
    body = _TEST_HEADER + "".join(_TEST.format(index=i) for i in range(tests))
    (directory / "test_bench.py").write_text(body, encoding="utf-8")
    stamps_path = directory / "stamps.json"
    command = [sys.executable, "-m", "pytest", "-q", "--rootdir", str(directory)]
    for plugin in _QUIET_PLUGINS:
        command += ["-p", plugin]
    command += ["-o", "addopts=", str(directory)]
    env = _environment()
    env["FIXTURE_OVERHEAD_STAMPS"] = str(stamps_path)
    result = subprocess.run(
        command,
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0 or f"{tests} passed" not in result.stdout:
        raise RuntimeError(
            f"{pattern} ({source}, {tests} tests) failed:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    stamps = json.loads(stamps_path.read_text(encoding="utf-8"))
    first, last = stamps[0], stamps[-2]
    between = len(stamps) - 2
    return (last[0] - first[0]) / between * 1000, (last[1] - first[1]) / between * 1000


def measure(pattern: str, source: str, tests: int, repeat: int, root: Path) -> tuple[float, float]:
    """(wall ms per test, CPU ms per test), each the best of ``repeat`` runs."""
    runs = [run_once(root / f"{pattern}-{n}", pattern, source, tests) for n in range(repeat)]
    return min(wall for wall, _ in runs), min(cpu for _, cpu in runs)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _ratio(value: float, reference: float | None) -> float | None:
    return value / reference if reference else None


def report(
    results: dict[str, tuple[float, float]], tests: int, repeat: int, source: str
) -> dict[str, object]:
    """Print the table; return the flat JSON document."""
    reference = results.get(REFERENCE, (0.0, 0.0))[0] or None
    floor = results.get(FLOOR, (0.0, 0.0))[0] or None
    print(
        f"\nS3 fixture overhead: {tests} tests per file, each with a fresh bucket, put + get "
        f"of 50 KiB (fixtures: {source}; wall per test, best of {repeat})"
    )
    print(
        f"{'fixture':<19} {'ms/test':>8} {'÷ mock_aws':>11} {'× faster':>9} {'÷ floor':>8} "
        f"{'CPU ms/test':>12}"
    )
    doc: dict[str, object] = {
        "format_version": FORMAT_VERSION,
        "tests": tests,
        "repeat": repeat,
        "fixtures": source,
        "target_s3_ms": TARGET_S3_MS,
    }
    for pattern, (ms, cpu) in results.items():
        ratio, over_floor = _ratio(ms, reference), _ratio(ms, floor)
        faster = reference / ms if reference and ms else None
        print(
            f"{pattern:<19} {ms:>8.2f} {_fmt(ratio, 4):>11} {_fmt(faster, 1):>9} "
            f"{_fmt(over_floor, 2):>8} {cpu:>12.2f}"
        )
        doc[f"{pattern}_ms"] = round(ms, 3)
        doc[f"{pattern}_cpu_ms"] = round(cpu, 3)
        if ratio is not None:
            doc[f"{pattern}_ratio"] = round(ratio, 5)
        if over_floor is not None:
            doc[f"{pattern}_over_floor_ratio"] = round(over_floor, 3)
    if "s3" in results:
        met = results["s3"][0] <= TARGET_S3_MS
        doc["s3_meets_target"] = met
        print(
            f"\ns3: {results['s3'][0]:.2f} ms/test; target <= {TARGET_S3_MS} ms: "
            f"{'met' if met else 'MISSED'}"
        )
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=200, help="tests per file (default 200)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per measurement, best kept (default 1)"
    )
    parser.add_argument("--json", type=Path, help="write the figures as one flat JSON object")
    parser.add_argument(
        "--fixtures",
        choices=("auto", "plugin", "standalone"),
        default="auto",
        help="the plugin's fixtures (auto: when it has them) or standalone ones",
    )
    parser.add_argument("--only", nargs="+", choices=ORDER, help="measure only these patterns")
    args = parser.parse_args(argv)
    if args.tests < 3 or args.repeat < 1:
        parser.error("--tests must be at least 3 and --repeat at least 1")
    source = args.fixtures
    if source == "auto":
        source = "plugin" if plugin_available() else "standalone"
    elif source == "plugin" and not plugin_available():
        parser.error(
            "--fixtures plugin: pytest_certstore.plugin lacks " + ", ".join(PLUGIN_FIXTURES)
        )
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fixture-overhead-") as tmp:
        for pattern in ORDER:
            if args.only and pattern not in args.only:
                continue
            results[pattern] = measure(pattern, source, args.tests, args.repeat, Path(tmp))
            print(f"measured {pattern}: {results[pattern][0]:.2f} ms/test", file=sys.stderr)
    doc = report(results, args.tests, args.repeat, source)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
