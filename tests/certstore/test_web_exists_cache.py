"""The web service's exists cache: the unit (fake clock), then through the app on moto.

HeadObject requests are counted at botocore's ``before-send`` on the real client, so "no HEAD"
means no request left the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from certstore.backends import LocalBackend, S3Backend
from certstore.config import Flags, Settings
from certstore.errors import ConfigError
from certstore.metrics import Metrics, RecordingEmitter
from certstore.storage import CertificateStorage
from certstore.web import FALLBACK_HEADER, SOURCE_HEADER, ExistsCache, create_app
from tests.certstore.web_client import AsgiClient

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PDF = b"%PDF-1.7 cached certificate\n" * 20
TTL = 5.0


class FakeClock:
    """Seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- the cache on its own -------------------------------------------------------------------


def test_a_remembered_key_is_confirmed_until_its_ttl_runs_out() -> None:
    clock = FakeClock()
    cache = ExistsCache(TTL, clock=clock)
    assert not cache.confirmed("a.pdf")
    cache.remember("a.pdf")
    assert cache.confirmed("a.pdf")
    clock.advance(TTL - 0.001)
    assert cache.confirmed("a.pdf")
    clock.advance(0.001)
    assert not cache.confirmed("a.pdf")
    assert len(cache) == 0  # the expired entry was dropped, not kept


def test_a_hit_does_not_extend_the_ttl() -> None:
    clock = FakeClock()
    cache = ExistsCache(TTL, clock=clock)
    cache.remember("a.pdf")
    for _ in range(4):
        clock.advance(1.0)
        assert cache.confirmed("a.pdf")
    clock.advance(1.0)
    assert not cache.confirmed("a.pdf")


def test_remembering_again_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache = ExistsCache(TTL, clock=clock)
    cache.remember("a.pdf")
    clock.advance(4.0)
    cache.remember("a.pdf")
    clock.advance(4.0)
    assert cache.confirmed("a.pdf")


def test_the_least_recently_used_key_goes_first_when_full() -> None:
    cache = ExistsCache(TTL, max_size=2, clock=FakeClock())
    cache.remember("a.pdf")
    cache.remember("b.pdf")
    assert cache.confirmed("a.pdf")  # a is now more recent than b
    cache.remember("c.pdf")
    assert len(cache) == 2
    assert cache.confirmed("a.pdf")
    assert cache.confirmed("c.pdf")
    assert not cache.confirmed("b.pdf")


def test_forget_and_clear() -> None:
    cache = ExistsCache(TTL, clock=FakeClock())
    cache.remember("a.pdf")
    cache.remember("b.pdf")
    cache.forget("a.pdf")
    cache.forget("never-there.pdf")
    assert not cache.confirmed("a.pdf")
    assert cache.confirmed("b.pdf")
    cache.clear()
    assert len(cache) == 0
    assert not cache.confirmed("b.pdf")


def test_ttl_zero_remembers_nothing() -> None:
    cache = ExistsCache(0, clock=FakeClock())
    assert not cache.enabled
    cache.remember("a.pdf")
    assert len(cache) == 0
    assert not cache.confirmed("a.pdf")


@pytest.mark.parametrize("ttl", [-0.1, 300.5, float("nan"), True])
def test_a_ttl_out_of_range_is_refused(ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl must be from 0 to 300"):
        ExistsCache(ttl)


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_size must be at least 1"):
        ExistsCache(TTL, max_size=0)


def test_concurrent_use_keeps_the_bound() -> None:
    cache = ExistsCache(TTL, max_size=50, clock=FakeClock())
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(500):
                key = f"k{(worker * 7 + n) % 120}"
                cache.remember(key)
                cache.confirmed(key)
                if n % 11 == 0:
                    cache.forget(key)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 0 < len(cache) <= 50


# --- the setting ----------------------------------------------------------------------------


def test_the_setting_defaults_to_five_seconds_and_zero_is_allowed() -> None:
    assert Settings.from_env({}).web_exists_ttl == 60.0
    assert Settings.from_env({"CERTSTORE_WEB_EXISTS_TTL": "0"}).web_exists_ttl == 0.0
    assert Settings.from_env({"CERTSTORE_WEB_EXISTS_TTL": "300"}).web_exists_ttl == 300.0


@pytest.mark.parametrize("value", ["-1", "300.1", "soon", "nan", "inf"])
def test_a_bad_setting_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="CERTSTORE_WEB_EXISTS_TTL="):
        Settings.from_env({"CERTSTORE_WEB_EXISTS_TTL": value})


def test_the_app_takes_its_ttl_from_the_settings(make_storage: Any) -> None:
    storage = make_storage(dual_write=True, read_primary=True)
    default = create_app(storage, Settings.from_env({}), api_token=TOKEN)
    assert default.state.service.exists_cache.ttl == 60.0
    off = create_app(storage, Settings.from_env({"CERTSTORE_WEB_EXISTS_TTL": "0"}))
    assert not off.state.service.exists_cache.enabled
    override = create_app(storage, Settings.from_env({}), exists_ttl=12)
    assert override.state.service.exists_cache.ttl == 12.0
    with pytest.raises(ValueError, match="not both"):
        create_app(storage, Settings.from_env({}), exists_ttl=1, exists_cache=ExistsCache(1))


def test_serve_refuses_an_exists_ttl_out_of_range() -> None:
    from certstore.cli import main

    assert main(["serve", "--exists-ttl", "301"]) == 2


# --- through the app ------------------------------------------------------------------------


@pytest.fixture
def heads(http_client: Any) -> Iterator[list[str]]:
    """The object keys of every HeadObject request the shared client sends during the test."""
    sent: list[str] = []

    def count(request: Any, **kwargs: Any) -> None:
        sent.append(request.url.rsplit("/", 1)[-1])

    unique = f"exists-cache-heads-{id(sent)}"
    http_client.meta.events.register("before-send.s3.HeadObject", count, unique_id=unique)
    yield sent
    http_client.meta.events.unregister("before-send.s3.HeadObject", unique_id=unique)


def client_for(storage: CertificateStorage, **kwargs: Any) -> AsgiClient:
    return AsgiClient(create_app(storage, Settings.from_env({}), api_token=TOKEN, **kwargs))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def phase2(make_storage: Any) -> CertificateStorage:
    return make_storage(dual_write=True, read_primary=True)  # type: ignore[no-any-return]


@pytest.mark.integration
def test_a_second_download_makes_no_second_head(
    phase2: CertificateStorage, heads: list[str], recorder: RecordingEmitter, clock: FakeClock
) -> None:
    with client_for(phase2, exists_cache=ExistsCache(TTL, clock=clock)) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        heads.clear()
        recorder.clear()
        first = client.get("/certificates/t/a.pdf")
        second = client.get("/certificates/t/a.pdf")
        head = client.head("/certificates/t/a.pdf")
        url = client.get("/urls/t/a.pdf")
    assert [r.status_code for r in (first, second, head)] == [302, 302, 302]
    assert second.headers[SOURCE_HEADER] == "s3"
    assert "X-Amz-Signature=" in second.headers["location"]
    assert url.json()["source"] == "s3"
    assert heads == ["a.pdf"]  # one HeadObject for four answers
    # cert.s3.read counts actual S3 reads only; every answer is still presigned.
    assert recorder.count("cert.s3.read") == 1
    assert recorder.count("cert.s3.url") == 4


@pytest.mark.integration
def test_after_the_ttl_the_download_heads_again(
    phase2: CertificateStorage, heads: list[str], recorder: RecordingEmitter, clock: FakeClock
) -> None:
    """A key nobody asks for while it ages is HEADed on the request path once it expires."""
    with client_for(phase2, exists_cache=ExistsCache(TTL, clock=clock)) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        heads.clear()
        recorder.clear()
        assert client.get("/certificates/t/a.pdf").status_code == 302
        clock.advance(TTL * 0.4)
        assert client.get("/certificates/t/a.pdf").status_code == 302
        assert len(heads) == 1
        clock.advance(TTL * 0.6)
        assert client.get("/certificates/t/a.pdf").status_code == 302
        assert len(heads) == 2
        assert client.get("/certificates/t/a.pdf").status_code == 302
    assert len(heads) == 2
    assert recorder.count("cert.s3.read") == 2


def _drain(client: AsgiClient, app_client_service: Any) -> None:
    client._portal.call(app_client_service.drain_refreshes)


@pytest.mark.integration
def test_a_hit_past_half_the_ttl_revalidates_in_the_background(
    phase2: CertificateStorage, heads: list[str], recorder: RecordingEmitter, clock: FakeClock
) -> None:
    """Stale-while-revalidate: hot keys never wait on S3, and the bound stays the TTL."""
    app = create_app(
        phase2, Settings.from_env({}), api_token=TOKEN, exists_cache=ExistsCache(TTL, clock=clock)
    )
    service = app.state.service
    with AsgiClient(app) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        heads.clear()
        assert client.get("/certificates/t/a.pdf").status_code == 302  # HEAD 1, on the path
        clock.advance(TTL * 0.6)
        hit = client.get("/certificates/t/a.pdf")  # answered from memory, re-check started
        _drain(client, service)
        assert hit.status_code == 302 and len(heads) == 2
        clock.advance(TTL * 0.6)  # 1.2 TTL after HEAD 1, 0.6 after the re-check
        assert client.get("/certificates/t/a.pdf").status_code == 302
        _drain(client, service)
        assert len(heads) == 3  # renewed again in the background, never on the request path
        phase2.s3.delete("t/a.pdf")  # type: ignore[union-attr]  (deleted behind its back)
        clock.advance(TTL * 0.6)
        stale = client.get("/certificates/t/a.pdf")  # still within the TTL of the last HEAD
        _drain(client, service)  # ...whose re-check finds the object gone
        after = client.get("/certificates/t/a.pdf")
    assert stale.status_code == 302
    assert after.status_code == 200 and after.headers[SOURCE_HEADER] == "local"
    assert recorder.count("cert.s3.read.fallback", reason="missing") >= 1


@pytest.mark.integration
def test_an_upload_forgets_the_key(
    phase2: CertificateStorage, heads: list[str], clock: FakeClock
) -> None:
    with client_for(phase2, exists_cache=ExistsCache(TTL, clock=clock)) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        assert client.put("/certificates/t/b.pdf", content=PDF, headers=AUTH).status_code == 201
        assert client.get("/certificates/t/a.pdf").status_code == 302
        assert client.get("/certificates/t/b.pdf").status_code == 302
        assert client.put("/certificates/t/a.pdf", content=PDF * 2, headers=AUTH).status_code == 201
        heads.clear()
        assert client.get("/certificates/t/a.pdf").status_code == 302
        assert client.get("/certificates/t/b.pdf").status_code == 302
    assert heads == ["a.pdf"]  # the re-uploaded key is confirmed again, the other is not


@pytest.mark.integration
def test_only_an_upload_that_reaches_the_save_forgets_the_key(
    phase2: CertificateStorage, clock: FakeClock
) -> None:
    cache = ExistsCache(TTL, clock=clock)
    with client_for(phase2, exists_cache=cache) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        assert client.get("/certificates/t/a.pdf").status_code == 302
        assert cache.confirmed("t/a.pdf")
        # An empty body is refused before the save: nothing changed, the entry may stay.
        assert client.put("/certificates/t/a.pdf", content=b"", headers=AUTH).status_code == 400
        assert cache.confirmed("t/a.pdf")
        # A body that reaches the save forgets the key whatever the save does.
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        assert not cache.confirmed("t/a.pdf")


@pytest.mark.integration
def test_ttl_zero_heads_on_every_download(
    phase2: CertificateStorage, heads: list[str], recorder: RecordingEmitter
) -> None:
    with client_for(phase2, exists_ttl=0) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        heads.clear()
        recorder.clear()
        for _ in range(3):
            assert client.get("/certificates/t/a.pdf").status_code == 302
    assert heads == ["a.pdf"] * 3
    assert recorder.count("cert.s3.read") == 3


@pytest.mark.integration
def test_an_object_deleted_behind_the_service_is_stale_for_at_most_the_ttl(
    phase2: CertificateStorage,
    heads: list[str],
    recorder: RecordingEmitter,
    clock: FakeClock,
    http_client: Any,
    http_bucket: str,
) -> None:
    cache = ExistsCache(TTL, clock=clock)
    with client_for(phase2, exists_cache=cache) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        assert client.get("/certificates/t/a.pdf").status_code == 302
        http_client.delete_object(Bucket=http_bucket, Key="certificates/t/a.pdf")
        # The documented trade-off: within the TTL the service still redirects.
        assert client.get("/certificates/t/a.pdf").status_code == 302
        clock.advance(TTL)
        recorder.clear()
        heads.clear()
        got = client.get("/certificates/t/a.pdf")
        assert got.status_code == 200
        assert got.content == PDF
        assert got.headers[FALLBACK_HEADER] == "missing"
        assert recorder.count("cert.s3.read.fallback", reason="missing") == 1
        assert not cache.confirmed("t/a.pdf")
        assert len(cache) == 0
        # A miss is never remembered: the next download asks S3 again.
        assert client.get("/certificates/t/a.pdf").headers[FALLBACK_HEADER] == "missing"
    assert heads == ["a.pdf", "a.pdf"]


@pytest.mark.integration
def test_a_missing_object_is_not_cached_and_is_found_once_uploaded(
    make_storage: Any, phase2: CertificateStorage, heads: list[str], clock: FakeClock
) -> None:
    make_storage().save("old/local.pdf", PDF)  # phase 0 save: local only
    cache = ExistsCache(TTL, clock=clock)
    with client_for(phase2, exists_cache=cache) as client:
        for _ in range(2):
            got = client.get("/certificates/old/local.pdf")
            assert got.headers[FALLBACK_HEADER] == "missing"
        assert len(cache) == 0
        assert phase2.s3 is not None
        phase2.s3.save("old/local.pdf", PDF)  # e.g. the backfill copies it
        assert client.get("/certificates/old/local.pdf").status_code == 302
        assert client.get("/certificates/old/local.pdf").status_code == 302
    assert heads == ["local.pdf"] * 3


@pytest.mark.integration
def test_a_flag_change_wins_over_the_cache(
    media_root: Any, http_client: Any, http_bucket: str, heads: list[str], clock: FakeClock
) -> None:
    flags = {"now": Flags(dual_write=True, read_primary=True)}
    metrics = Metrics([RecordingEmitter()])
    storage = CertificateStorage(
        LocalBackend(media_root),
        S3Backend(http_client, http_bucket, prefix="certificates/", metrics=metrics),
        flags=lambda: flags["now"],
        metrics=metrics,
    )
    with client_for(storage, exists_cache=ExistsCache(TTL, clock=clock)) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        assert client.get("/certificates/t/a.pdf").status_code == 302
        flags["now"] = Flags(dual_write=True)  # rollback to phase 1: reads go local
        got = client.get("/certificates/t/a.pdf")
    assert got.status_code == 200
    assert got.headers[SOURCE_HEADER] == "local"
    assert got.content == PDF


@pytest.mark.integration
def test_s3_only_answers_404_for_a_missing_key_and_forgets_it(
    make_storage: Any, heads: list[str], clock: FakeClock, http_client: Any, http_bucket: str
) -> None:
    storage = make_storage(s3_only=True)
    cache = ExistsCache(TTL, clock=clock)
    with client_for(storage, exists_cache=cache) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        assert client.get("/certificates/t/a.pdf").status_code == 302
        assert client.get("/certificates/t/a.pdf").status_code == 302
        http_client.delete_object(Bucket=http_bucket, Key="certificates/t/a.pdf")
        clock.advance(TTL)
        assert client.get("/certificates/t/a.pdf").status_code == 404
        assert client.get("/certificates/t/a.pdf").status_code == 404
    assert len(cache) == 0
    assert len(heads) == 3


# --- the presigned URL kept with a live entry ----------------------------------------------


def test_a_url_is_kept_only_with_a_live_entry_and_only_if_it_outlives_it() -> None:
    clock = FakeClock()
    cache = ExistsCache(TTL, clock=clock)
    cache.attach_url("a", "https://s3/a?sig", url_lifetime=3600)
    assert cache.url_for("a") is None  # no entry: nothing to attach to
    cache.remember("a")
    cache.attach_url("a", "https://s3/a?sig", url_lifetime=TTL + 1)
    assert cache.url_for("a") is None  # would expire too close to the entry
    cache.attach_url("a", "https://s3/a?sig", url_lifetime=3600)
    assert cache.url_for("a") == "https://s3/a?sig"
    clock.advance(TTL)
    assert cache.url_for("a") is None  # the entry expired with its URL
    cache.remember("a")
    assert cache.url_for("a") is None  # a new confirmation starts without a URL


def _count_presigns(storage: CertificateStorage) -> list[str]:
    calls: list[str] = []
    backend = storage.s3
    assert backend is not None
    original = backend.url

    def counting(key: str, **kwargs: Any) -> str:
        calls.append(key)
        return original(key, **kwargs)

    backend.url = counting  # type: ignore[method-assign]
    return calls


@pytest.mark.integration
def test_hits_reuse_the_presigned_url_without_presigning(
    phase2: CertificateStorage, heads: list[str], recorder: RecordingEmitter, clock: FakeClock
) -> None:
    presigns = _count_presigns(phase2)
    with client_for(phase2, exists_cache=ExistsCache(TTL, clock=clock)) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        heads.clear()
        recorder.clear()
        first = client.get("/certificates/t/a.pdf")
        second = client.get("/certificates/t/a.pdf")
        third = client.head("/certificates/t/a.pdf")
        clock.advance(TTL)
        fourth = client.get("/certificates/t/a.pdf")
    locations = [r.headers["location"] for r in (first, second, third, fourth)]
    assert locations[0] == locations[1] == locations[2]
    assert presigns == ["t/a.pdf", "t/a.pdf"]  # first answer, and again after the TTL
    assert len(heads) == 2
    assert recorder.count("cert.s3.url") == 4
    assert all(r.headers[SOURCE_HEADER] == "s3" for r in (first, second, third, fourth))


@pytest.mark.integration
def test_a_short_url_expiry_is_never_reused(
    make_storage: Any,
    http_client: Any,
    http_bucket: str,
    heads: list[str],
    clock: FakeClock,
    recorder: RecordingEmitter,
    media_root: Any,
) -> None:
    metrics = Metrics([recorder])
    s3 = S3Backend(http_client, http_bucket, prefix="certificates/", url_expiry=30, metrics=metrics)
    storage = CertificateStorage(
        LocalBackend(media_root),
        s3,
        flags=Flags(dual_write=True, read_primary=True),
        metrics=metrics,
    )
    presigns = _count_presigns(storage)
    with client_for(storage, exists_cache=ExistsCache(TTL, clock=clock)) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        heads.clear()
        for _ in range(3):
            assert client.get("/certificates/t/a.pdf").status_code == 302
    assert len(heads) == 1  # existence is still cached
    assert presigns == ["t/a.pdf"] * 3  # but a 30 s URL is presigned for every answer


@pytest.mark.integration
def test_a_rollback_to_local_ignores_the_cached_url(
    make_storage: Any, heads: list[str], clock: FakeClock
) -> None:
    flags = {"value": Flags(dual_write=True, read_primary=True)}
    storage = make_storage(dual_write=True, read_primary=True)
    storage._flags = lambda: flags["value"]
    with client_for(storage, exists_cache=ExistsCache(TTL, clock=clock)) as client:
        assert client.put("/certificates/t/a.pdf", content=PDF, headers=AUTH).status_code == 201
        assert client.get("/certificates/t/a.pdf").status_code == 302
        assert client.get("/certificates/t/a.pdf").status_code == 302
        flags["value"] = Flags(dual_write=True)  # the operator rolls reads back to local
        local = client.get("/certificates/t/a.pdf")
    assert local.status_code == 200
    assert local.headers[SOURCE_HEADER] == "local"
    assert local.content == PDF
