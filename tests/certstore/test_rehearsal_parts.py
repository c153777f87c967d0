"""The rehearsal's building blocks: synthetic PDFs, percentiles, fault injection, report paths."""

from __future__ import annotations

import re
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from certstore.backends import build_client
from certstore.config import Settings
from certstore.rehearsal import FaultInjector, LatencySummary, generate, make_pdf, percentile
from certstore.rehearsal._report import report_paths


def check_pdf_structure(data: bytes) -> None:
    """The structure a PDF reader relies on: header, objects at the xref offsets, stream
    lengths, startxref pointing at the xref table, EOF marker."""
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\n(\d+)\n%%EOF", data).group(1))  # type: ignore[union-attr]
    assert data[startxref : startxref + 4] == b"xref"
    table = data[startxref:].split(b"trailer")[0].split(b"\n")
    count = int(table[1].split()[1])
    entries = table[2 : 2 + count]
    assert entries[0].startswith(b"0000000000 65535 f")
    for number, entry in enumerate(entries[1:], start=1):
        offset = int(entry.split()[0])
        assert data[offset:].startswith(f"{number} 0 obj".encode())
    for match in re.finditer(rb"/Length (\d+) >>\nstream\n", data):
        length = int(match.group(1))
        end = match.end() + length
        assert data[end : end + len(b"\nendstream")] == b"\nendstream"
    assert re.search(rb"/Size (\d+)", data).group(1) == str(count).encode()  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [0, 601, 700, 4096, 50 * 1024, 200_003])
def test_synthetic_pdfs_are_valid_at_every_size(size: int) -> None:
    data = make_pdf("Certificate (Curaçao) \\ 東京", size)
    check_pdf_structure(data)
    assert len(data) == max(size, len(make_pdf("Certificate (Curaçao) \\ 東京")))
    assert b"Tj" in data


def test_generate_is_deterministic_with_utf8_names_and_varied_sizes() -> None:
    first = generate(200, size=2048, utf8_share=0.3, seed=7)
    assert [c.key for c in first] == [
        c.key for c in generate(200, size=2048, utf8_share=0.3, seed=7)
    ]
    assert len({c.key for c in first}) == 200
    utf8 = [c for c in first if not c.key.isascii()]
    assert 30 <= len(utf8) <= 90
    assert any("Curaçao" in c.key or "東京" in c.key or "Δ" in c.key for c in utf8)
    sizes = [c.size for c in first]
    assert min(sizes) >= 0.8 * 2048 - 1 and max(sizes) <= 1.2 * 2048 + 1
    assert len(set(sizes)) > 50
    assert generate(10, utf8_share=0.0, seed=1)[0].key.isascii()
    for cert in first[:5]:
        check_pdf_structure(cert.data)


def test_percentile_is_linear_interpolation_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 95) is None
    data = [0.3, 9.1, 2.2, 7.7, 5.0, 1.1, 8.8]
    quantiles = statistics.quantiles(data, n=100, method="inclusive")
    assert percentile(data, 95) == pytest.approx(quantiles[94])
    with pytest.raises(ValueError, match="outside"):
        percentile(values, 101)


def test_latency_summary_in_milliseconds() -> None:
    summary = LatencySummary.of([0.001, 0.002, 0.003])
    assert summary.count == 3 and summary.p50_ms == pytest.approx(2.0)
    assert summary.max_ms == pytest.approx(3.0)
    assert LatencySummary.of([]).as_dict()["p95_ms"] is None


def test_report_paths() -> None:
    assert report_paths("out/r") == (Path("out/r.md"), Path("out/r.json"))
    assert report_paths("out/r.md") == (Path("out/r.md"), Path("out/r.json"))
    assert report_paths("out/r.json") == (Path("out/r.md"), Path("out/r.json"))


def test_fault_injector_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultInjector(1.5)
    with pytest.raises(ValueError, match="negative"):
        FaultInjector(0, -1)
    assert not FaultInjector().active


def test_fault_draws_follow_the_seed() -> None:
    def draws(seed: int) -> list[bool]:
        injector = FaultInjector(0.5, seed=seed)
        return [injector.http_fault() for _ in range(50)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert 10 < sum(draws(3)) < 40


@pytest.mark.integration
def test_injected_503s_reach_botocore_and_are_retried(
    http_settings: Settings, http_bucket: str
) -> None:
    client = build_client(replace(http_settings, max_attempts=2))
    injector = FaultInjector(1.0, seed=1).attach(client)
    assert injector is client
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket=http_bucket, Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 1


@pytest.mark.integration
def test_injected_latency_is_applied_to_every_request(
    http_settings: Settings, http_bucket: str
) -> None:
    slept: list[float] = []
    injector = FaultInjector(0.0, 40.0, sleep=slept.append)
    client: Any = build_client(http_settings)
    injector.attach(client)
    injector.attach(client)  # idempotent: one handler per client
    client.put_object(Bucket=http_bucket, Key="k", Body=b"x")
    client.get_object(Bucket=http_bucket, Key="k")["Body"].read()
    assert slept == [0.04, 0.04]
    assert injector.requests == 2 and injector.faults == 0
