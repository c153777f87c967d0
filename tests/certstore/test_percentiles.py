"""certstore.percentiles: type 7 checked against NumPy and the standard library."""

from __future__ import annotations

import random
import statistics

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certstore.percentiles import PERCENTILE_METHOD, histogram_percentile, percentile

_values = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=60,
)
_q = st.floats(min_value=0, max_value=100, allow_nan=False)


def test_method_is_stated() -> None:
    assert "Hyndman-Fan type 7" in PERCENTILE_METHOD
    assert "(n - 1) * q / 100" in PERCENTILE_METHOD


def test_hand_computed_figures() -> None:
    one_to_forty = list(range(1, 41))
    # h = 39 * 0.5 = 19.5 -> between x[19]=20 and x[20]=21.
    assert percentile(one_to_forty, 50) == 20.5
    # h = 39 * 0.95 = 37.05 -> 38 + 0.05 * (39 - 38).
    assert percentile(one_to_forty, 95) == pytest.approx(38.05)
    # h = 3 * 0.25 = 0.75 -> 10 + 0.75 * (20 - 10).
    assert percentile([40, 10, 30, 20], 25) == 17.5


def test_matches_statistics_quantiles_inclusive() -> None:
    rng = random.Random(20261121)
    for size in (2, 3, 7, 20, 101):
        data = [rng.uniform(0, 500) for _ in range(size)]
        cuts = statistics.quantiles(data, n=100, method="inclusive")
        for q in range(1, 100):
            assert percentile(data, q) == pytest.approx(cuts[q - 1], rel=1e-12, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(values=_values, q=_q)
def test_matches_numpy_default(values: list[float], q: float) -> None:
    expected = float(numpy.percentile(values, q))
    assert percentile(values, q) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_edges() -> None:
    assert percentile([7.5], 0) == percentile([7.5], 95) == percentile([7.5], 100) == 7.5
    data = [3.0, 1.0, 2.0, 9.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 9.0
    assert percentile([5.0, 5.0, 5.0, 1.0], 50) == 5.0  # ties interpolate to the tied value
    assert percentile([1, 2, 2, 2, 3], 75) == 2.0
    assert isinstance(percentile([1, 2], 50), float)
    assert percentile(iter([4, 2]), 50) == 3.0  # any iterable


def test_input_is_not_modified() -> None:
    data = [3.0, 1.0, 2.0]
    percentile(data, 50)
    assert data == [3.0, 1.0, 2.0]


@pytest.mark.parametrize("q", [-0.1, 100.5, float("nan"), True])
def test_q_outside_range_raises(q: float) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        percentile([1.0, 2.0], q)
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        histogram_percentile({1.0: 2}, q)


def test_no_values_raises() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="no values"):
        histogram_percentile({}, 50)
    with pytest.raises(ValueError, match="no values"):
        histogram_percentile({10.0: 0, 20.0: 0}, 50)


def test_negative_histogram_count_raises() -> None:
    with pytest.raises(ValueError, match="whole number >= 0"):
        histogram_percentile({1.0: 3, 2.0: -1}, 50)


def _expand(histogram: dict[float, int]) -> list[float]:
    return [value for value, count in histogram.items() for _ in range(count)]


def test_histogram_hand_computed() -> None:
    histogram = {1.0: 50, 10.0: 45, 100.0: 4, 1000.0: 1}
    # N = 100: ranks 0-49 are 1, 50-94 are 10, 95-98 are 100, rank 99 is 1000.
    # p90: h = 89.1, ranks 89 and 90 are both 10 -> 10.
    assert histogram_percentile(histogram, 90) == 10.0
    # p95: h = 94.05, rank 94 is 10 and rank 95 is 100 -> 10 + 0.05 * 90.
    assert histogram_percentile(histogram, 95) == pytest.approx(14.5)
    # p99: h = 98.01, rank 98 is 100 and rank 99 is 1000 -> 100 + 0.01 * 900.
    assert histogram_percentile(histogram, 99) == pytest.approx(109.0)
    assert histogram_percentile(histogram, 0) == 1.0
    assert histogram_percentile(histogram, 100) == 1000.0
    # Empty buckets are skipped, also when they sit between the two ranks.
    assert histogram_percentile({1.0: 1, 5.0: 0, 9.0: 1}, 50) == 5.0


@settings(max_examples=200, deadline=None)
@given(
    histogram=st.dictionaries(
        st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False),
        st.integers(min_value=0, max_value=30),
        min_size=1,
        max_size=15,
    ).filter(lambda h: sum(h.values()) > 0),
    q=_q,
)
def test_histogram_equals_percentile_of_expanded_list(
    histogram: dict[float, int], q: float
) -> None:
    expanded = _expand(histogram)
    assert histogram_percentile(histogram, q) == pytest.approx(
        percentile(expanded, q), rel=1e-12, abs=1e-12
    )
    assert histogram_percentile(histogram, q) == pytest.approx(
        float(numpy.percentile(expanded, q)), rel=1e-9, abs=1e-9
    )
