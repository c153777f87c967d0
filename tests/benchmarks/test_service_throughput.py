"""The service benchmark's arithmetic and gate (no servers, no Locust): a target that cannot
fail would be a defect."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "service_throughput", ROOT / "benchmarks" / "service_throughput.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _args(**overrides: object) -> argparse.Namespace:
    values = dict(
        users=10, user_rps=5.0, duration=20, rounds=2, warmup=10, cert_size_kb=50, exists_ttl=60.0
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def _round(p95: float, *, p50: float = 2.0, failures: int = 0, rps: float = 50.0) -> dict:
    return {
        "requests": 1000,
        "failures": failures,
        "rps": rps,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p95 * 2,
    }


def _rounds(service: list[dict], no_cache: list[dict], floor: list[dict]) -> dict:
    return {
        "service": service,
        "service_no_cache": no_cache,
        "floor": floor,
        "head_fraction": {"service": 0.05, "service_no_cache": 1.0},
    }


def test_ratios_use_the_median_round_and_the_target_passes(bench: ModuleType) -> None:
    rounds = _rounds([_round(3), _round(4)], [_round(30), _round(34)], [_round(2), _round(4)])
    result = bench.summarise(rounds, _args())
    assert result["service_p95_ms"] == 3.5 and result["floor_p95_ms"] == 3.0
    assert result["p95_ratio"] == pytest.approx(3.5 / 3.0)
    assert result["p95_ratio_no_cache"] == pytest.approx(32 / 3.0)
    assert result["service_round_p95_ms"] == "3,4"
    assert result["meets_target"] is True
    assert result["meets_target_no_cache"] is False
    assert result["service_head_fraction"] == 0.05
    json.dumps(result)  # one flat JSON object
    assert all(not isinstance(v, (dict, list)) for v in result.values())


def test_a_slow_service_or_a_failing_one_misses_the_target(bench: ModuleType) -> None:
    slow = bench.summarise(
        _rounds([_round(4), _round(4)], [_round(30)], [_round(2), _round(2)]), _args()
    )
    assert slow["p95_ratio"] == pytest.approx(2.0)
    assert slow["meets_target"] is False
    failing = bench.summarise(
        _rounds([_round(2, failures=1), _round(2)], [_round(30)], [_round(2)]), _args()
    )
    assert failing["p95_ratio"] == pytest.approx(1.0)
    assert failing["meets_target"] is False


def test_a_floor_below_locusts_resolution_counts_as_one_millisecond(bench: ModuleType) -> None:
    result = bench.summarise(_rounds([_round(1.5)], [_round(20)], [_round(0, p50=0)]), _args())
    assert result["p95_ratio"] == pytest.approx(1.5)
    assert result["meets_target"] is True


def test_head_fraction_counts_only_between_the_snapshots(bench: ModuleType) -> None:
    assert bench.head_fraction((40.0, 100.0), (45.0, 200.0)) == pytest.approx(0.05)
    assert bench.head_fraction((40.0, 100.0), (40.0, 100.0)) is None


def test_metric_totals_sum_every_label_set(bench: ModuleType) -> None:
    text = (
        "# HELP cert_s3_read_total reads\n"
        'cert_s3_read_total{phase="2"} 3.0\n'
        "cert_s3_read_total 2.0\n"
        "cert_s3_read_total_created 1.7e9\n"
    )
    assert bench.metric_total(text, "cert_s3_read_total") == 5.0


@pytest.mark.parametrize(
    "argv",
    [["--users", "0"], ["--user-rps", "0"], ["--warmup", "-1"], ["--exists-ttl", "0"]],
)
def test_bad_arguments_are_refused(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
