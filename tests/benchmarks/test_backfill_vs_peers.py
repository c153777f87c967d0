"""The benchmark's arithmetic and gates (no peers, no servers): a target that cannot fail
would be a defect."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.benchmarks.conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("backfill_vs_peers")


def _measures(
    bench: ModuleType, endpoint: str, walls: dict[str, float], cpus: dict[str, float]
) -> list:
    return [
        bench.Measure(
            tool, endpoint, rep, walls[tool] * (1 + rep / 100), cpus[tool], 1.0, 100, True
        )
        for tool in walls
        for rep in range(3)
    ]


def test_dataset_has_utf8_names_and_exact_sizes(bench: ModuleType, tmp_path: Path) -> None:
    data = bench.make_dataset(tmp_path, 30, 2)
    assert len(data.files) == 30 and data.total_bytes == 30 * 2048
    assert sum(1 for p in data.files if not p.name.isascii()) == 20
    assert all(p.stat().st_size == 2048 for p in data.files)


def test_prepare_records_both_digests_and_measures_the_import(
    bench: ModuleType, tmp_path: Path
) -> None:
    """The engine's manifest carries what the catalog would (SHA-256 and MD5), the CLI's
    template catalog is a real ``certstore catalog import``, and its CPU is returned so the
    benchmark can report the hashing it moved out of the backfill."""
    import hashlib
    import json

    from certstore.catalog import Catalog

    data = bench.make_dataset(tmp_path / "media", 5, 1)
    ctx = bench.Context(bench.Peers(tmp_path / "no-peers"), data, 2, tmp_path)
    cpu = bench.prepare(ctx, ["certstore backfill"])
    assert cpu is not None and cpu > 0
    entries = json.loads((tmp_path / "manifest.json").read_text())
    with Catalog(f"sqlite:///{ctx.catalog_template}", create=False) as catalog:
        for entry in entries:
            body = Path(entry["path"]).read_bytes()
            assert entry["md5"] == hashlib.md5(body).hexdigest()
            row = catalog.find(entry["key"])
            assert row is not None and (row.sha256, row.md5) == (entry["sha256"], entry["md5"])
    assert bench.prepare(ctx, ["s5cmd cp"]) is None


def test_ratios_and_targets_pass_and_fail(bench: ModuleType, tmp_path: Path) -> None:
    data = bench.DataSet(tmp_path, [tmp_path / f"{n}" for n in range(100)], 100 * 1024)
    fast = _measures(
        bench,
        "rclone",
        {"certstore backfill": 0.1, "s5cmd cp": 0.12, "aws s3 sync": 0.5},
        {"certstore backfill": 0.1, "s5cmd cp": 0.2, "aws s3 sync": 1.0},
    )
    flat = bench.ratios(bench.summarise(fast, data), ["rclone"])
    assert flat["rclone_serve_vs_s5cmd_ratio"] == pytest.approx(1.2, rel=1e-6)
    assert flat["rclone_serve_cpu_per_object_vs_s5cmd_ratio"] == pytest.approx(0.5)
    goals = bench.targets(flat)
    assert goals["target_rclone_serve_vs_s5cmd_met"] is True
    assert goals["target_rclone_serve_cpu_vs_s5cmd_met"] is True
    assert goals["target_rclone_serve_vs_aws_sync_met"] is True
    assert goals["target_moto_vs_fastest_peer_met"] is None

    slow = _measures(
        bench,
        "moto",
        {"certstore backfill": 1.0, "s5cmd cp": 0.5, "rclone copy": 2.0},
        {"certstore backfill": 1.0, "s5cmd cp": 0.5, "rclone copy": 1.0},
    )
    flat = bench.ratios(bench.summarise(slow, data), ["moto"])
    assert flat["moto_vs_fastest_peer_ratio"] == pytest.approx(0.5)
    assert bench.targets(flat)["target_moto_vs_fastest_peer_met"] is False
    # the targets are set for 2,000 x 50 KiB: one big file or --quick judges none of them
    for data_set in ((1, 204800), (200, 50)):
        assert set(bench.targets(flat, data_set).values()) == {None}


def test_failed_runs_are_not_counted(bench: ModuleType, tmp_path: Path) -> None:
    data = bench.DataSet(tmp_path, [tmp_path / "x"], 1024)
    measures = [
        bench.Measure("s5cmd cp", "moto", 0, 1.0, 1.0, 1.0, 0, False, "exit 1"),
        bench.Measure("certstore backfill", "moto", 0, 1.0, 1.0, 1.0, 1, True),
    ]
    summary = bench.summarise(measures, data)
    assert summary["moto|s5cmd cp"] == {"failed": ["exit 1"]}
    assert "moto_vs_s5cmd_ratio" not in bench.ratios(summary, ["moto"])


def test_arguments_are_checked(bench: ModuleType) -> None:
    args = bench.parse_args(["--quick"])
    assert (args.files, args.reps) == (200, 1)
    with pytest.raises(SystemExit):
        bench.parse_args(["--tools", "s5cmd cp,robocopy"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--files", "0"])


def test_paired_ranges_compare_runs_of_the_same_repetition(bench: ModuleType) -> None:
    """Each repetition's ratio uses that repetition's peer run; a failed run drops its pair."""
    measures = [
        bench.Measure("certstore backfill", "rclone", 0, 1.0, 1.0, 1.0, 100, True),
        bench.Measure("s5cmd cp", "rclone", 0, 1.1, 1.0, 1.0, 100, True),
        bench.Measure("certstore backfill", "rclone", 1, 2.0, 1.0, 1.0, 100, True),
        bench.Measure("s5cmd cp", "rclone", 1, 1.8, 1.0, 1.0, 100, True),
        bench.Measure("certstore backfill", "rclone", 2, 0.1, 1.0, 1.0, 100, True),
        bench.Measure("s5cmd cp", "rclone", 2, 9.9, 1.0, 1.0, 0, False, "exit 1"),
    ]
    spreads = bench.paired_ranges(measures, ["rclone"])
    assert spreads["rclone_serve_vs_s5cmd_paired_min"] == pytest.approx(0.9)
    assert spreads["rclone_serve_vs_s5cmd_paired_max"] == pytest.approx(1.1)
    assert not any("aws_sync" in name or "engine" in name for name in spreads)


def test_remove_bucket_leaves_the_server_as_it_was(bench: ModuleType, s3) -> None:
    """Every measured run's objects and bucket are deleted through the S3 API, more than one
    listing page of them, so no run meets a server the previous runs filled."""
    from botocore.exceptions import ClientError

    client = s3.client
    bucket = "bench-0001-certstore"
    client.create_bucket(Bucket=bucket)
    for number in range(1005):
        client.put_object(Bucket=bucket, Key=f"certificates/t{number % 3}/{number}.pdf", Body=b"x")
    assert bench.count_objects(client, bucket) == 1005

    bench.remove_bucket(client, bucket)

    with pytest.raises(ClientError) as gone:
        client.head_bucket(Bucket=bucket)
    assert gone.value.response["Error"]["Code"] in ("404", "NoSuchBucket")
    assert bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}


class _LaggingServer:
    """The fake's client, except that DeleteBucket answers ``BucketNotEmpty`` ``lag`` times
    although the bucket is empty (what ``rclone serve s3`` once did, its directory cache
    behind the deletes)."""

    def __init__(self, client: Any, lag: int) -> None:
        self._client = client
        self.lag = lag
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def delete_bucket(self, **params: Any) -> Any:
        from botocore.exceptions import ClientError

        if self.refused < self.lag:
            self.refused += 1
            raise ClientError(
                {"Error": {"Code": "BucketNotEmpty", "Message": "not empty"}}, "DeleteBucket"
            )
        return self._client.delete_bucket(**params)


def test_remove_bucket_retries_a_server_whose_listing_is_ahead(
    bench: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench.time, "sleep", lambda _seconds: None)
    bucket = "bench-0002-certstore"
    s3.client.create_bucket(Bucket=bucket)
    s3.client.put_object(Bucket=bucket, Key="certificates/a.pdf", Body=b"x")
    lagging = _LaggingServer(s3.client, lag=2)
    assert bench.remove_bucket(lagging, bucket) is True
    assert lagging.refused == 2
    assert bucket not in {b["Name"] for b in s3.client.list_buckets()["Buckets"]}

    s3.client.create_bucket(Bucket=bucket)
    stuck = _LaggingServer(s3.client, lag=bench.REMOVE_ATTEMPTS)
    assert bench.remove_bucket(stuck, bucket) is False
    assert f"bucket {bucket} still answers BucketNotEmpty" in capsys.readouterr().err
    assert stuck.refused == bench.REMOVE_ATTEMPTS
    s3.client.delete_bucket(Bucket=bucket)
