"""The one percentile method (type 7, linear), on raw samples and on histograms alike."""

from __future__ import annotations

import pytest

from slo.percentiles import PERCENTILE_FIELDS, PERCENTILE_METHOD, histogram_percentile, percentile


def test_method_is_the_projects_type_7() -> None:
    assert "Hyndman-Fan type 7" in PERCENTILE_METHOD
    assert PERCENTILE_FIELDS["max_ms"] == 100.0


def test_linear_on_one_to_hundred() -> None:
    samples = list(range(1, 101))
    # h = 99 * p / 100: p50 -> 49.5 (between 50 and 51), p95 -> 94.05, p99 -> 98.01.
    assert percentile(samples, 50) == 50.5
    assert percentile(samples, 95) == pytest.approx(95.05)
    assert percentile(samples, 99) == pytest.approx(99.01)
    assert percentile(samples, 100) == 100


def test_small_sample_tail_sits_near_the_maximum() -> None:
    samples = [float(value) for value in range(1, 21)]
    # h = 19 * 0.95 = 18.05: 19 + 0.05 * (20 - 19).
    assert percentile(samples, 95) == pytest.approx(19.05)
    # h = 19 * 0.99 = 18.81, from a reversed iterator (any order, any iterable).
    assert percentile(reversed(samples), 99) == pytest.approx(19.81)
    assert percentile([7.0], 95) == 7.0


def test_histogram_agrees_with_raw_samples() -> None:
    raw = [1] * 50 + [10] * 45 + [100] * 4 + [1000]
    histogram = {1: 50, 10: 45, 100: 4, 1000: 1}
    for percent in (50, 90, 95, 96, 99, 100):
        assert histogram_percentile(histogram, percent) == pytest.approx(percentile(raw, percent))
    # Ranks 0-49 are 1, 50-94 are 10, 95-98 are 100, 99 is 1000.
    assert histogram_percentile(histogram, 90) == 10  # h = 89.1, both neighbours 10
    assert histogram_percentile(histogram, 95) == pytest.approx(14.5)  # h = 94.05: 10 -> 100
    assert histogram_percentile(histogram, 96) == 100  # h = 95.04, both neighbours 100


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="no values"):
        histogram_percentile({5.0: 0}, 50)
