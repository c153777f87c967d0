"""The one percentile method: nearest rank, on raw samples and on histograms alike."""

from __future__ import annotations

import pytest

from slo.percentiles import histogram_percentile, percentile, rank


def test_nearest_rank_on_one_to_hundred() -> None:
    samples = list(range(1, 101))
    assert percentile(samples, 50) == 50
    assert percentile(samples, 95) == 95
    assert percentile(samples, 99) == 99
    assert percentile(samples, 100) == 100


def test_small_sample_tail_is_conservative() -> None:
    samples = [float(value) for value in range(1, 21)]
    assert percentile(samples, 95) == 19
    assert percentile(reversed(samples), 99) == 20
    assert percentile([7.0], 95) == 7.0


def test_histogram_agrees_with_raw_samples() -> None:
    raw = [1] * 50 + [10] * 45 + [100] * 4 + [1000]
    histogram = {1: 50, 10: 45, 100: 4, 1000: 1}
    for percent in (50, 90, 95, 96, 99, 100):
        assert histogram_percentile(histogram, percent) == percentile(raw, percent)
    assert histogram_percentile(histogram, 95) == 10
    assert histogram_percentile(histogram, 96) == 100


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match="percent"):
        rank(0, 10)
