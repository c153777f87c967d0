"""Hooks, options, markers and fixtures of the certstore pytest plugin.

Only wiring lives here; the engines are modules of their own: :mod:`.targets` (what S3
fixtures yield), :mod:`.fake_s3`, :mod:`.moto_server`, :mod:`.faults` and :mod:`.fault_proxy`
(fault injection), :mod:`.presets` (fault buckets A-H), :mod:`.metric_capture`
(``cert_metrics``), :mod:`.slo_marker` and :mod:`.slo_report` (SLO markers).

Fixture layers follow pytest-httpserver: a session fixture starts a service or builds a client
once, a function fixture hands each test a fresh, empty bucket on it. Under pytest-xdist every
worker has its own session fixtures (its own moto server on its own free port); SLO results
travel to the controller through ``config.workeroutput``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_certstore._handles import (
    S3_FIXTURES,
    InProcessFaults,
    ProxyFaults,
    StorageFactory,
)
from pytest_certstore.errors import SloMarkerError
from pytest_certstore.faults import FaultPlan
from pytest_certstore.metric_capture import MetricCapture
from pytest_certstore.slo_marker import SloSampler, SloTarget, parse_marker
from pytest_certstore.slo_report import (
    WORKEROUTPUT_KEY,
    SloCollector,
    XdistSloHooks,
    build_result,
    format_table,
)
from pytest_certstore.targets import (
    S3Target,
    abort_uploads,
    empty_bucket,
    make_client,
    unique_bucket_name,
    unique_prefix,
)

#: The ``pytest11`` entry point's name (pyproject.toml).
ENTRY_POINT_NAME = "certstore"
SLO_MODES = ("enforce", "report")
LIVE_ENABLE_HINT = (
    "live S3 tests are off: set S3_TESTS=1 and AWS_STORAGE_BUCKET_NAME=<bucket> (credentials "
    "from the usual AWS chain; AWS_S3_ENDPOINT_URL/AWS_S3_REGION_NAME optional) to run them"
)
_LIVE_VARIABLES = (
    "S3_TESTS",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_REGION_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)

_collector_key = pytest.StashKey[SloCollector]()
_live_env_key = pytest.StashKey[dict[str, str]]()
_target_kinds_key = pytest.StashKey[set[str]]()
_slo_target_key = pytest.StashKey[SloTarget]()
_faults_key = pytest.StashKey[InProcessFaults]()
_own_server_key = pytest.StashKey[str]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Loaded under another name (``-p pytest_certstore.plugin``): block the entry point's name,
    so the ``pytest11`` entry point does not register this module a second time."""
    name = pluginmanager.get_name(sys.modules[__name__])
    if name not in (None, ENTRY_POINT_NAME) and pluginmanager.get_plugin(ENTRY_POINT_NAME) is None:
        pluginmanager.set_blocked(ENTRY_POINT_NAME)


def pytest_addoption(parser: pytest.Parser) -> None:
    """One option group: ``certstore``."""
    group = parser.getgroup("certstore", "certstore S3 fixtures, fault injection and SLOs")
    group.addoption(
        "--s3-endpoint",
        metavar="URL",
        default=None,
        help="s3_server: use this existing S3 endpoint instead of starting a moto server",
    )
    group.addoption(
        "--slo-report",
        metavar="PATH",
        default=None,
        help="write every @pytest.mark.slo result to PATH as one versioned JSON document",
    )
    group.addoption(
        "--slo-mode",
        choices=SLO_MODES,
        default="enforce",
        help="enforce: a missed SLO fails its test (default); report: record it only",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, the SLO collector and (on the xdist controller) its merge hook."""
    config.addinivalue_line(
        "markers",
        "slo(p50_ms=None, p90_ms=None, p95_ms=None, p99_ms=None, error_rate=None, "
        "min_samples=10, name=None): latency/error objectives judged after the test from "
        "slo_sampler (or pytest-benchmark) samples",
    )
    config.addinivalue_line(
        "markers", "s3_live: needs live S3; skipped unless S3_TESTS=1 (see the s3_live fixture)"
    )
    endpoint = config.getoption("s3_endpoint")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise pytest.UsageError(f"--s3-endpoint {endpoint!r} is not an http(s) URL")
    collector = SloCollector(config.getoption("slo_mode"))
    config.stash[_collector_key] = collector
    config.stash[_live_env_key] = {k: os.environ[k] for k in _LIVE_VARIABLES if k in os.environ}
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(XdistSloHooks(collector), "certstore-slo-xdist")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the ``s3_live`` fixture carry the ``s3_live`` marker (for ``-m``)."""
    for item in items:
        if "s3_live" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "s3_live"
        ):
            item.add_marker(pytest.mark.s3_live)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``fault_bucket`` runs the test once per preset A-H."""
    if "fault_bucket" in metafunc.fixturenames:
        from pytest_certstore.presets import PRESETS

        metafunc.parametrize(
            "fault_bucket", [p.letter for p in PRESETS], indirect=True, ids=[p.id for p in PRESETS]
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip live tests unless enabled; validate ``@pytest.mark.slo`` before the test runs."""
    if item.get_closest_marker("s3_live") and not _live_enabled(item.config):
        pytest.skip(LIVE_ENABLE_HINT)
    marker = item.get_closest_marker("slo")
    if marker is None:
        return
    own = [m for m in getattr(item, "own_markers", ()) if m.name == "slo"]
    if len(own) > 1:
        raise SloMarkerError(
            f"{item.nodeid} has {len(own)} @pytest.mark.slo markers; give one with every "
            "limit (only one would be judged)",
        )
    target = parse_marker(marker.args, marker.kwargs)
    names = getattr(item, "fixturenames", ())
    if "slo_sampler" not in names and "benchmark" not in names:
        raise SloMarkerError(
            f"{item.nodeid} has @pytest.mark.slo but uses neither the slo_sampler fixture nor "
            "pytest-benchmark's benchmark fixture: nothing would be measured",
        )
    item.stash[_slo_target_key] = target


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Judge the test's SLO after its body ran; a miss fails the test (``--slo-mode enforce``)."""
    target = item.stash.get(_slo_target_key, None)
    if target is None:
        return (yield)
    try:
        outcome = yield
    except (pytest.skip.Exception, pytest.xfail.Exception):
        raise
    except BaseException as err:
        if item.get_closest_marker("xfail") is None:  # an expected failure is not an SLO's
            _record(item, target, test_error=f"{type(err).__name__}: {err}".splitlines()[0])
        raise
    bench = getattr(item, "funcargs", {}).get("benchmark")
    if getattr(bench, "disabled", False) and not len(item.funcargs.get("slo_sampler") or ()):
        pytest.skip(
            "@pytest.mark.slo not judged: pytest-benchmark is disabled here (xdist or "
            "--benchmark-disable), so it measured nothing"
        )
    result = _record(item, target)
    if result["verdict"] != "pass" and item.config.getoption("slo_mode") == "enforce":
        pytest.fail(format_table(result) + "\n" + "\n".join(result["failures"]), pytrace=False)
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """An SLO test whose fixtures failed still gets its line in the SLO report (an error),
    so the report's count of objectives does not quietly shrink."""
    report = yield
    target = item.stash.get(_slo_target_key, None)
    if (
        target is not None
        and call.when == "setup"
        and report.failed
        and item.get_closest_marker("xfail") is None
    ):
        first = str(call.excinfo.value).splitlines() if call.excinfo else []
        what = f"{call.excinfo.typename}: {first[0] if first else ''}" if call.excinfo else ""
        _record(item, target, test_error=f"set-up failed: {what}".rstrip(": "))
    return report


def _record(item: pytest.Item, target: SloTarget, test_error: str | None = None) -> dict[str, Any]:
    latencies, errors, source = _samples(item)
    warnings = []
    kinds = item.stash.get(_target_kinds_key, set())
    names = getattr(item, "fixturenames", ())
    fixture_of = {"fake": "s3", "moto": "s3_moto"}
    in_process = sorted(
        {fixture_of[k] for k in kinds if k in fixture_of}
        | {n for n in fixture_of.values() if n in names}
    )
    if in_process:
        warnings.append(
            f"measured on an in-process S3 ({', '.join(in_process)}): latency there says "
            "nothing about a network endpoint; use s3_server"
        )
    worker = getattr(item.config, "workerinput", {}).get("workerid", "master")
    result = build_result(
        test_id=item.nodeid,
        target=target,
        latencies_ms=latencies,
        errors=errors,
        source=source,
        warnings=warnings,
        worker=worker,
        test_error=test_error,
    )
    item.config.stash[_collector_key].add(result)
    return result


def _samples(item: pytest.Item) -> tuple[list[float], int, str]:
    funcargs = getattr(item, "funcargs", {})
    sampler = funcargs.get("slo_sampler")
    if isinstance(sampler, SloSampler) and len(sampler):
        return sampler.latencies_ms, sampler.errors, "slo_sampler"
    bench = funcargs.get("benchmark")
    stats = getattr(getattr(bench, "stats", None), "stats", None)
    data = list(getattr(stats, "data", None) or [])
    if bench is not None and data:
        return [seconds * 1000 for seconds in data], 0, "benchmark"
    return [], 0, "slo_sampler" if sampler is not None else "benchmark"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Workers ship their SLO results; the controller (or a serial run) writes the report."""
    config = session.config
    collector = config.stash.get(_collector_key, None)
    if collector is None:
        return
    if hasattr(config, "workerinput"):
        config.workeroutput[WORKEROUTPUT_KEY] = collector.results
        return
    path = config.getoption("slo_report")
    if path:
        collector.write(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Every SLO of the run, measured against target."""
    collector = config.stash.get(_collector_key, None)
    if collector is None or hasattr(config, "workerinput") or not collector.results:
        return
    terminalreporter.section("certstore SLOs")
    for line in collector.summary_lines():
        terminalreporter.write_line(line)
    path = config.getoption("slo_report")
    if path:
        terminalreporter.write_line(f"SLO report written to {path}")


def _live_enabled(config: pytest.Config) -> bool:
    return config.stash.get(_live_env_key, {}).get("S3_TESTS", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


def _worker(config: pytest.Config) -> str:
    return str(getattr(config, "workerinput", {}).get("workerid", "master"))


def _note_kind(request: pytest.FixtureRequest, kind: str) -> None:
    request.node.stash.setdefault(_target_kinds_key, set()).add(kind)


def _hand_out(request: pytest.FixtureRequest, target: S3Target) -> S3Target:
    """The target, with the test's ``s3_faults`` attached when it is already active: an S3
    fixture the test body (or ``cert_storage``) asks for after ``s3_faults`` gets the same
    faults as one requested as an argument."""
    faults = request.node.stash.get(_faults_key, None)
    if faults is not None:
        faults.attach(target)
    return target


class _Session:
    """One session-scoped S3 service: its client, and how tests get buckets on it.

    ``admin`` is a second client that no fault rule is ever attached to: set-up and clean-up
    go through it, so a test's faults (still attached while fixtures it requested later are
    torn down first) cannot break the clean-up or leave a bucket behind for the next test.
    ``owned``: this session's service serves this process only, so buckets a test created
    besides its own can be dropped after it (not on a shared ``--s3-endpoint``).
    """

    def __init__(
        self,
        client: Any,
        endpoint_url: str | None,
        kind: str,
        fake: Any = None,
        pool: Any = None,
        admin: Any = None,
        owned: bool = True,
    ) -> None:
        self.client = client
        self.endpoint_url = endpoint_url
        self.kind = kind
        self.fake = fake
        self.pool = pool
        self.admin = admin if admin is not None else client
        self.owned = owned

    def bucket_names(self) -> set[str]:
        """The buckets that exist now (empty when the service is not this process's own)."""
        if not self.owned:
            return set()
        if self.fake is not None:
            return set(self.fake.bucket_names())
        return {b["Name"] for b in self.admin.list_buckets().get("Buckets", [])}

    def drop_bucket(self, name: str) -> None:
        """Empty and delete ``name`` (already gone, e.g. the test deleted it, is fine)."""
        if self.fake is not None:
            self.fake.delete_bucket(name)
        else:
            _drop_bucket(self.admin, name)

    def drop_extra_buckets(self, before: set[str]) -> None:
        """Drop the buckets a test created besides its own, so the next test cannot see them."""
        if not self.owned:
            return
        for name in sorted(self.bucket_names() - before):
            self.drop_bucket(name)


@pytest.fixture(scope="session")
def _certstore_fake_session() -> Iterator[_Session]:
    from pytest_certstore.fake_s3 import BucketPool, FakeS3

    fake = FakeS3()
    client = fake.attach(make_client(None))
    yield _Session(client, None, "fake", fake=fake, pool=BucketPool("certstore-test"))
    fake.detach(client)
    fake.reset()


@pytest.fixture
def s3(_certstore_fake_session: _Session, request: pytest.FixtureRequest) -> Iterator[S3Target]:
    """The fast fake: an in-memory S3 behind a real boto3 client, a fresh empty bucket.

    Bucket names come from a small pool (a name is never shared by two running tests, and its
    bucket is recreated empty for each test) so botocore's endpoint cache stays warm. The
    fake's ``operations`` start empty for each test; buckets the test creates besides its own
    are dropped after it.
    """
    session = _certstore_fake_session
    name = session.pool.acquire()
    before = session.bucket_names() - {name}
    session.fake.create_bucket(name, replace=True)
    session.fake.clear_operations()
    _note_kind(request, "fake")
    try:
        yield _hand_out(request, S3Target(session.client, name, None, "fake", fake=session.fake))
    finally:
        session.fake.delete_bucket(name)
        session.pool.release(name)
        session.drop_extra_buckets(before)


def _moto_client(stubber: Any) -> Any:
    client = make_client(None)
    client.meta.events.register("before-send", stubber)
    return client


@pytest.fixture(scope="session")
def _certstore_moto_session() -> Iterator[_Session]:
    """moto's S3 in this process, answering this session's own clients only.

    Not ``mock_aws()``: its patching is process-wide (moto's fake credentials put into
    ``os.environ``, every boto3 client in the process answered by moto) and would outlast the
    first test that asked for ``s3_moto`` -- a later test's client without an endpoint,
    ``s3_live``'s included, would be talking to moto. A private stubber on each client instead.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    from pytest_certstore.fake_s3 import BucketPool

    stubber = BotocoreStubber()
    stubber.enabled = True
    yield _Session(
        _moto_client(stubber),
        None,
        "moto",
        pool=BucketPool("certstore-moto"),
        admin=_moto_client(stubber),
    )


def _leased_bucket(
    session: _Session, request: pytest.FixtureRequest, kind: str
) -> Iterator[S3Target]:
    """A pooled name's bucket, created empty; after the test, dropped with the admin client.
    A name whose bucket could not be dropped is retired, so no later test inherits it."""
    name = session.pool.acquire()
    existing = session.bucket_names()
    if name in existing:  # left over (a test outside the fixtures made it): start empty
        session.drop_bucket(name)
    before = existing - {name}
    session.admin.create_bucket(Bucket=name)
    _note_kind(request, kind)
    try:
        yield _hand_out(request, S3Target(session.client, name, session.endpoint_url, kind))
    finally:
        # a name whose bucket could not be dropped stays leased: no later test inherits it
        session.drop_bucket(name)
        session.pool.release(name)
        session.drop_extra_buckets(before)


@pytest.fixture
def s3_moto(
    _certstore_moto_session: _Session, request: pytest.FixtureRequest
) -> Iterator[S3Target]:
    """In-process moto for the long tail of the S3 API: one moto per session (reachable only
    through this fixture's clients), a fresh bucket per test."""
    yield from _leased_bucket(_certstore_moto_session, request, "moto")


@pytest.fixture(scope="session")
def s3_server_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """URL of the S3 endpoint behind ``s3_server``: ``--s3-endpoint`` or a moto server
    started once per session (per xdist worker) on a free port on 127.0.0.1."""
    endpoint = pytestconfig.getoption("s3_endpoint")
    if endpoint:
        yield endpoint.rstrip("/")
        return
    from pytest_certstore.moto_server import MotoServer

    server = MotoServer()
    url = server.start()
    pytestconfig.stash[_own_server_key] = url
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _certstore_server_session(s3_server_url: str, pytestconfig: pytest.Config) -> _Session:
    return _Session(
        make_client(s3_server_url),
        s3_server_url,
        "server",
        admin=make_client(s3_server_url),
        # only a server this process started is its own: not --s3-endpoint, nor a project's
        # override of s3_server_url (other workers' buckets may live there)
        owned=pytestconfig.stash.get(_own_server_key, None) == s3_server_url,
    )


def _drop_bucket(client: Any, name: str) -> None:
    """Abort uploads, empty and delete ``name`` (a bucket the test deleted itself is not an
    error)."""
    from botocore.exceptions import ClientError

    try:
        abort_uploads(client, name)
        empty_bucket(client, name)
        client.delete_bucket(Bucket=name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise


@pytest.fixture
def s3_server(
    _certstore_server_session: _Session, request: pytest.FixtureRequest
) -> Iterator[S3Target]:
    """A real S3 endpoint over HTTP on 127.0.0.1 and a fresh bucket, deleted afterwards.

    For anything timed and for subprocesses: ``s3_server.endpoint_url`` and
    ``s3_server.env()`` point another process at it.
    """
    session = _certstore_server_session
    name = unique_bucket_name(_worker(request.config))
    before = session.bucket_names()
    session.admin.create_bucket(Bucket=name)
    _note_kind(request, "server")
    try:
        yield _hand_out(request, S3Target(session.client, name, session.endpoint_url, "server"))
    finally:
        try:
            _drop_bucket(session.admin, name)
        finally:
            session.drop_extra_buckets(before)


@pytest.fixture(scope="session")
def _certstore_live_session(pytestconfig: pytest.Config) -> _Session:
    env = pytestconfig.stash.get(_live_env_key, {})
    if not env.get("AWS_STORAGE_BUCKET_NAME"):
        pytest.fail(
            "S3_TESTS=1 but AWS_STORAGE_BUCKET_NAME is not set: which bucket should the "
            "live tests use?",
            pytrace=False,
        )
    credentials = {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in env}
    client = make_client(
        env.get("AWS_S3_ENDPOINT_URL"),
        credentials=credentials,
        region=env.get("AWS_S3_REGION_NAME") or "us-east-1",
    )
    admin = make_client(
        env.get("AWS_S3_ENDPOINT_URL"),
        credentials=credentials,
        region=env.get("AWS_S3_REGION_NAME") or "us-east-1",
    )
    return _Session(client, env.get("AWS_S3_ENDPOINT_URL"), "live", admin=admin, owned=False)


@pytest.fixture
def s3_live(request: pytest.FixtureRequest) -> Iterator[S3Target]:
    """Live S3 (``S3_TESTS=1``): the configured bucket, a unique prefix, cleaned up after.

    Skipped with a reason saying how to enable it when ``S3_TESTS`` is not set.
    """
    if not _live_enabled(request.config):
        pytest.skip(LIVE_ENABLE_HINT)
    session: _Session = request.getfixturevalue("_certstore_live_session")
    bucket = request.config.stash[_live_env_key]["AWS_STORAGE_BUCKET_NAME"]
    prefix = unique_prefix(_worker(request.config))
    _note_kind(request, "live")
    try:
        yield _hand_out(
            request, S3Target(session.client, bucket, session.endpoint_url, "live", prefix=prefix)
        )
    finally:
        abort_uploads(session.admin, bucket, prefix)
        empty_bucket(session.admin, bucket, prefix)


@pytest.fixture
def cert_storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageFactory:
    """Factory: ``cert_storage(dual_write=True, read_primary=False, s3="s3")`` returns a
    ``certstore.CertificateStorage`` on a per-test media root and the chosen S3 fixture."""
    return StorageFactory(request, tmp_path / "media")


@pytest.fixture
def s3_faults(request: pytest.FixtureRequest) -> Iterator[InProcessFaults]:
    """Fault rules for in-process boto3 clients (botocore events, real retries).

    Attached automatically to the clients of the S3 fixtures the test uses and of the storages
    ``cert_storage`` builds; ``s3_faults.attach(client)`` adds any other client.
    """
    faults = InProcessFaults(FaultPlan(seed=0))
    for name in S3_FIXTURES:
        if name in request.fixturenames:
            faults.attach(request.getfixturevalue(name))
    request.node.stash[_faults_key] = faults  # S3 fixtures made later attach themselves
    try:
        yield faults
    finally:
        del request.node.stash[_faults_key]
        faults.detach_all()


@pytest.fixture(scope="session")
def _certstore_proxy_session(s3_server_url: str) -> Iterator[tuple[Any, Any]]:
    from pytest_certstore.fault_proxy import FaultProxy

    proxy = FaultProxy(s3_server_url)
    url = proxy.start()
    try:
        # A 5 s read timeout: a 'timeout' fault then costs 5 s per attempt, not certstore's 30 s.
        yield proxy, make_client(url, read_timeout=5.0)
    finally:
        proxy.stop()


@pytest.fixture
def s3_fault_proxy(
    _certstore_proxy_session: tuple[Any, Any], s3_server: S3Target
) -> Iterator[ProxyFaults]:
    """The same fault rules, applied by an HTTP proxy in front of ``s3_server``.

    ``s3_fault_proxy.url`` is the endpoint for subprocesses and non-boto3 clients;
    ``s3_fault_proxy.env()`` is a ready environment for a ``certstore`` subprocess.
    """
    proxy, client = _certstore_proxy_session
    proxy.plan.clear()
    try:
        yield ProxyFaults(proxy, s3_server, client)
    finally:
        proxy.plan.clear()


@pytest.fixture
def fault_bucket(
    request: pytest.FixtureRequest, cert_storage: StorageFactory, s3_faults: InProcessFaults
) -> Any:
    """One fault bucket preset (A-H) wired to a storage on ``s3``; the test runs once per
    preset. ``fault_bucket.run()`` acts under the faults; ``.mismatches(outcome,
    cert_metrics)`` lists every difference from the preset's expected outcome."""
    from pytest_certstore.presets import BucketCase, LocalSpy, preset

    chosen = preset(getattr(request, "param", "A"))
    storage = cert_storage(
        chosen.flags.dual_write, chosen.flags.read_primary, s3_only=chosen.flags.s3_only
    )
    spy = LocalSpy(storage.local)
    storage.local = spy
    case = BucketCase(chosen, storage, s3_faults.plan, spy)
    case.arrange()
    return case


@pytest.fixture
def cert_metrics() -> Iterator[MetricCapture]:
    """Every certstore metric emitted during the test; names checked against the catalog."""
    capture = MetricCapture().start()
    try:
        yield capture
    finally:
        capture.stop()


@pytest.fixture
def slo_sampler() -> SloSampler:
    """Latency samples for the test's ``@pytest.mark.slo``: ``with slo_sampler.measure():``."""
    return SloSampler()
