"""The S3 fixtures and ``cert_storage``: real boto3 clients, per-test isolation."""

from __future__ import annotations

import pytest

from certstore import CertificateStorage, Flags
from pytest_certstore import S3Target
from pytest_certstore.errors import FixtureConfigError

pytest_plugins = ["pytester"]

# pytester restores sys.modules after each in-process run, so whatever a run imports first is
# re-imported -- and assertion-rewritten, ~3 s -- by the next run. Hypothesis' pytest plugin
# imports this in every run's terminal summary: import it once, here.
import hypothesis.internal.observability  # noqa: E402, F401


@pytest.mark.parametrize("round_", [1, 2])
@pytest.mark.parametrize("name", ["s3", "s3_moto", "s3_server"])
def test_each_test_gets_an_empty_bucket_of_its_own(
    request: pytest.FixtureRequest, name: str, round_: int
) -> None:
    target: S3Target = request.getfixturevalue(name)
    assert target.keys() == []
    listing = target.client.list_objects_v2(Bucket=target.bucket)
    assert listing.get("KeyCount", 0) == 0
    target.put("left-behind.txt", b"written by round %d" % round_)
    assert target.get("left-behind.txt") == b"written by round %d" % round_


def test_in_process_targets_have_no_endpoint(
    s3: S3Target, s3_moto: S3Target, s3_server: S3Target
) -> None:
    assert (s3.kind, s3.endpoint_url, s3.in_process) == ("fake", None, True)
    assert (s3_moto.kind, s3_moto.endpoint_url, s3_moto.in_process) == ("moto", None, True)
    assert s3_server.kind == "server" and not s3_server.in_process
    assert s3_server.endpoint_url is not None
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError, match="s3_server"):
        s3.env()
    env = s3_server.env()
    assert env["AWS_S3_ENDPOINT_URL"] == s3_server.endpoint_url
    assert env["AWS_STORAGE_BUCKET_NAME"] == s3_server.bucket


def test_the_fake_and_moto_do_not_see_each_other(s3: S3Target, s3_moto: S3Target) -> None:
    s3.put("only-in-fake.txt", b"fake")
    assert not s3_moto.exists("only-in-fake.txt")
    assert s3.fake.object_bytes(s3.bucket, "only-in-fake.txt") == b"fake"


def test_clients_are_built_once_per_session(
    s3_server: S3Target, s3: S3Target, request: pytest.FixtureRequest
) -> None:
    session = request.getfixturevalue("_certstore_server_session")
    assert s3_server.client is session.client
    assert s3.client is request.getfixturevalue("_certstore_fake_session").client


def test_cert_storage_routes_by_its_flags(cert_storage, s3: S3Target) -> None:  # type: ignore[no-untyped-def]
    shadow = cert_storage(dual_write=True)
    assert isinstance(shadow, CertificateStorage)
    assert shadow.flags() == Flags(dual_write=True)
    shadow.save("a/b.pdf", b"pdf bytes")
    assert s3.get("certificates/a/b.pdf") == b"pdf bytes"
    local_only = cert_storage(dual_write=False)
    local_only.save("c.pdf", b"local")
    assert not s3.exists("certificates/c.pdf")
    assert local_only.read("a/b.pdf") == b"pdf bytes"  # one media root per test


def test_cert_storage_on_the_http_endpoint(cert_storage, s3_server: S3Target) -> None:  # type: ignore[no-untyped-def]
    storage = cert_storage(dual_write=True, read_primary=True, s3="s3_server")
    storage.save("x.pdf", b"over http")
    assert s3_server.get("certificates/x.pdf") == b"over http"
    assert storage.url("x.pdf").startswith(s3_server.endpoint_url)


def test_cert_storage_rejects_an_unknown_fixture_name(cert_storage) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FixtureConfigError, match="s3_server"):
        cert_storage(s3="s3_nope")


def test_s3_live_is_skipped_with_how_to_enable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3_TESTS", raising=False)
    pytester.makepyfile(
        """
        import pytest

        def test_fixture(s3_live):
            raise AssertionError("must not run")

        @pytest.mark.s3_live
        def test_marker():
            raise AssertionError("must not run")
        """
    )
    result = pytester.runpytest("-rs", "--strict-markers")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*S3_TESTS=1*AWS_STORAGE_BUCKET_NAME*"])


def test_s3_live_uses_a_unique_prefix_and_cleans_it_up(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, s3_server: S3Target
) -> None:
    """Pointed at the loopback endpoint, the live fixture's prefix and cleanup are real."""
    s3_server.put("outside/keep.txt", b"not the test's")
    for name, value in s3_server.env(S3_TESTS="1").items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(
        """
        import pytest

        prefixes = []

        @pytest.mark.parametrize("n", [1, 2])
        def test_live(s3_live, n):
            assert s3_live.kind == "live" and s3_live.prefix.startswith("pytest-certstore/")
            assert s3_live.keys() == []
            s3_live.put("a.txt", b"x")
            s3_live.put("deep/b.txt", b"y")
            prefixes.append(s3_live.prefix)

        def test_prefixes_differ():
            assert len(set(prefixes)) == 2
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)
    assert s3_server.keys() == ["outside/keep.txt"]


def test_s3_live_without_a_bucket_fails_clearly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_TESTS", "1")
    monkeypatch.delenv("AWS_STORAGE_BUCKET_NAME", raising=False)
    pytester.makepyfile("def test_live(s3_live):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*AWS_STORAGE_BUCKET_NAME is not set*"])


def test_a_tests_faults_and_deletions_cannot_break_cleanup_or_leak(
    pytester: pytest.Pytester,
) -> None:
    """Faults still attached while a lazily requested S3 fixture is torn down, a test that
    deletes its own bucket, extra buckets and the fake's operations log: the next test still
    starts clean, and no teardown errors."""
    pytester.makepyfile(
        """
        import pytest

        KINDS = ["s3", "s3_moto", "s3_server"]

        @pytest.mark.parametrize("kind", ["s3_moto", "s3_server"])
        def test_faults_outlive_the_target(cert_storage, s3_faults, kind):
            storage = cert_storage(dual_write=True, s3=kind)
            storage.save("k.pdf", b"%PDF")
            s3_faults.inject("InternalError")

        @pytest.mark.parametrize("kind", KINDS)
        def test_deletes_its_bucket_and_makes_another(request, kind):
            target = request.getfixturevalue(kind)
            target.put("k.pdf", b"x")
            target.client.delete_object(Bucket=target.bucket, Key="k.pdf")
            target.client.delete_bucket(Bucket=target.bucket)
            target.client.create_bucket(Bucket=f"my-archive-{kind.replace('_', '-')}")

        @pytest.mark.parametrize("kind", KINDS)
        def test_next_test_starts_clean(request, kind):
            target = request.getfixturevalue(kind)
            assert target.keys() == []
            names = {b["Name"] for b in target.client.list_buckets()["Buckets"]}
            assert names == {target.bucket}, names
            if kind == "s3":
                assert target.fake.operations == ["ListObjectsV2", "ListBuckets"]
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=8)


def test_s3_moto_answers_its_own_clients_only(pytester: pytest.Pytester) -> None:
    """moto must not be left answering every boto3 client of the session (a later live test
    would be talking to moto) nor put its fake credentials into os.environ."""
    pytester.makepyfile(
        """
        import os

        import boto3
        from botocore.awsrequest import AWSResponse

        BEFORE = os.environ.get("AWS_ACCESS_KEY_ID")

        def test_uses_moto(s3_moto):
            s3_moto.put("a.pdf", b"x")
            assert s3_moto.get("a.pdf") == b"x"

        def test_later_clients_are_not_moto():
            assert os.environ.get("AWS_ACCESS_KEY_ID") == BEFORE
            client = boto3.client(
                "s3", region_name="eu-west-1",
                aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
            )
            seen = []

            class Raw:
                def stream(self, **kwargs):
                    yield b""

            def answer(request, **kwargs):
                seen.append(request.url)
                return AWSResponse(request.url, 200, {}, Raw())

            client.meta.events.register("before-send", answer)
            client.list_buckets()
            assert seen, "the request was answered before reaching this client's own handler"
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_target_get_checks_the_response_checksum(s3: S3Target, s3_faults) -> None:  # type: ignore[no-untyped-def]
    from botocore.exceptions import FlexibleChecksumError

    s3.put("k.pdf", bytes(range(256)) * 4)
    s3_faults.inject("corrupt", "GetObject")
    with pytest.raises(FlexibleChecksumError):
        s3.get("k.pdf")


def test_a_moto_server_refuses_a_port_another_server_holds(s3_server_url: str) -> None:
    """Else the readiness probe would be answered by the other server, and two sessions would
    share one S3 without knowing it."""
    from urllib.parse import urlparse

    from pytest_certstore.moto_server import MotoServer, MotoServerError

    taken = urlparse(s3_server_url).port
    with pytest.raises(MotoServerError, match="already in use"):
        MotoServer(port=taken).start()


def test_a_moto_server_ends_when_the_process_that_started_it_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The server runs in a session of its own (a Ctrl-C for the parent must not kill it under
    a clean shutdown); a parent killed outright must still not leave it running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import time\n"
        "from pytest_certstore.moto_server import MotoServer\n"
        "server = MotoServer(); server.start(); print(server.pid, flush=True); time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the moto server outlived the process that started it")


def test_s3_faults_reach_a_target_the_test_body_fetches(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from botocore.exceptions import ClientError

        @pytest.mark.parametrize("kind", ["s3", "s3_moto", "s3_server"])
        def test_late(request, s3_faults, kind):
            s3_faults.inject("AccessDenied", "PutObject")
            target = request.getfixturevalue(kind)
            with pytest.raises(ClientError, match="AccessDenied"):
                target.put("k.pdf", b"x")
            assert s3_faults.attempts("PutObject") == 1
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


def test_buckets_on_an_endpoint_the_session_does_not_own_are_left_alone(
    pytester: pytest.Pytester, s3_server: S3Target
) -> None:
    """A project that overrides s3_server_url (a shared endpoint): another worker's bucket
    made while a test runs must survive that test's clean-up."""
    pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="session")
        def s3_server_url():
            return {s3_server.endpoint_url!r}
        """
    )
    pytester.makepyfile(
        """
        def test_other_worker_creates_a_bucket(s3_server):
            s3_server.client.create_bucket(Bucket="another-workers-bucket")
        """
    )
    try:
        pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)
        names = {b["Name"] for b in s3_server.client.list_buckets()["Buckets"]}
        assert "another-workers-bucket" in names
    finally:
        s3_server.client.delete_bucket(Bucket="another-workers-bucket")


def test_a_leftover_pooled_bucket_is_emptied_before_a_test_gets_it(
    request: pytest.FixtureRequest,
) -> None:
    session = request.getfixturevalue("_certstore_moto_session")
    name = session.pool.acquire()
    session.pool.release(name)
    session.admin.create_bucket(Bucket=name)
    session.admin.put_object(Bucket=name, Key="stale.pdf", Body=b"left over")
    target: S3Target = request.getfixturevalue("s3_moto")
    assert target.bucket == name and target.keys() == []
