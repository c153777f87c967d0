"""SLO objectives from ``@pytest.mark.slo``, the ``slo_sampler``, and the percentile math.

Percentiles are computed one way everywhere (this module, the terminal summary, the JSON report,
the release gate and the rehearsal report): :mod:`certstore.percentiles`, **linear
interpolation between closest ranks** -- numpy's default ``method="linear"``, Hyndman & Fan
type 7. For sorted samples ``x[0..n-1]`` and percentile ``p``: ``h = (n - 1) * p / 100``, result
``x[floor(h)] + (h - floor(h)) * (x[ceil(h)] - x[floor(h)])``.

Error samples (``ok=False``) count in the latency percentiles too (a failed request still took
that long) and in ``error_rate = errors / samples``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from certstore import percentiles as _percentiles
from pytest_certstore.errors import SloMarkerError

#: The report's short name for :data:`certstore.percentiles.PERCENTILE_METHOD` (numpy's name).
PERCENTILE_METHOD = "linear"

#: Latency objectives the marker accepts (milliseconds).
LATENCY_KEYS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")
#: Every marker keyword argument.
MARKER_KEYS = (*LATENCY_KEYS, "error_rate", "min_samples", "name")
#: ``min_samples`` when the marker does not say.
DEFAULT_MIN_SAMPLES = 10

VERDICT_PASS = "pass"
VERDICT_FAIL = "fail"
VERDICT_TOO_FEW = "too_few_samples"
VERDICT_ERROR = "error"


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation (numpy's default).

    Kept under this name for plugin users; the math is :func:`certstore.percentiles.percentile`
    so the marker's verdict and the release gate never disagree about a figure.
    """
    return _percentiles.percentile(values, p)


@dataclass(frozen=True)
class SloTarget:
    """The objectives of one test, validated."""

    latency_ms: Mapping[str, float]
    error_rate: float | None = None
    min_samples: int = DEFAULT_MIN_SAMPLES
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the report (only the objectives that were set)."""
        data: dict[str, Any] = dict(self.latency_ms)
        if self.error_rate is not None:
            data["error_rate"] = self.error_rate
        data["min_samples"] = self.min_samples
        return data


def parse_marker(args: Sequence[Any], kwargs: Mapping[str, Any]) -> SloTarget:
    """A :class:`SloTarget` from the marker's arguments; anything unknown or invalid raises."""
    if args:
        raise SloMarkerError(
            f"@pytest.mark.slo takes keyword arguments only ({', '.join(MARKER_KEYS)}), "
            f"got positional {list(args)!r}",
        )
    unknown = sorted(set(kwargs) - set(MARKER_KEYS))
    if unknown:
        raise SloMarkerError(
            f"@pytest.mark.slo got unknown argument(s) {', '.join(unknown)}; "
            f"valid: {', '.join(MARKER_KEYS)}",
            argument=unknown[0],
        )
    latency: dict[str, float] = {}
    for key in LATENCY_KEYS:
        if key in kwargs:
            value = kwargs[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                why = (
                    " (a NaN or infinite limit could never fail)"
                    if isinstance(value, float) and not math.isfinite(value)
                    else ""
                )
                raise SloMarkerError(
                    f"@pytest.mark.slo {key}={value!r} must be a finite number > 0 (milliseconds)"
                    + why,
                    argument=key,
                )
            latency[key] = float(value)
    error_rate = kwargs.get("error_rate")
    if error_rate is not None and (
        isinstance(error_rate, bool)
        or not isinstance(error_rate, int | float)
        or not 0 <= error_rate <= 1
    ):
        raise SloMarkerError(
            f"@pytest.mark.slo error_rate={error_rate!r} must be a fraction from 0 to 1 "
            "(0.01 means 1 %)",
            argument="error_rate",
        )
    min_samples = kwargs.get("min_samples", DEFAULT_MIN_SAMPLES)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise SloMarkerError(
            f"@pytest.mark.slo min_samples={min_samples!r} must be a whole number >= 1",
            argument="min_samples",
        )
    name = kwargs.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise SloMarkerError(
            f"@pytest.mark.slo name={name!r} must be a non-empty string", argument="name"
        )
    if not latency and error_rate is None:
        raise SloMarkerError(
            "@pytest.mark.slo needs at least one objective: "
            f"{', '.join(LATENCY_KEYS)} or error_rate",
        )
    return SloTarget(latency, None if error_rate is None else float(error_rate), min_samples, name)


@dataclass(frozen=True)
class Sample:
    """One measured operation."""

    ms: float
    ok: bool = True


@dataclass
class SloSampler:
    """Collects latency samples for the test's ``@pytest.mark.slo`` objectives.

    ``with slo_sampler.measure(): ...`` times the block. An exception inside is recorded as an
    error sample and **re-raised** -- unless it is an instance of ``errors``, which the test
    declares as tolerated failures: those are recorded and swallowed, so an ``error_rate``
    objective can judge them. ``record(ms, ok)`` adds a sample measured elsewhere.
    """

    clock: Callable[[], float] = time.perf_counter
    samples: list[Sample] = field(default_factory=list)

    @contextmanager
    def measure(self, *, errors: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """Time the block as one sample (see the class docstring for exceptions)."""
        start = self.clock()
        try:
            yield
        except Exception as err:
            self.samples.append(Sample((self.clock() - start) * 1000, ok=False))
            if errors and isinstance(err, errors):
                return
            raise
        self.samples.append(Sample((self.clock() - start) * 1000, ok=True))

    def record(self, ms: float, ok: bool = True) -> None:
        """Add one sample of ``ms`` milliseconds."""
        if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0 or ms != ms:
            raise ValueError(f"a latency sample must be a number of ms >= 0, got {ms!r}")
        self.samples.append(Sample(float(ms), bool(ok)))

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def latencies_ms(self) -> list[float]:
        """Every sample's latency, in order."""
        return [sample.ms for sample in self.samples]

    @property
    def errors(self) -> int:
        """How many samples were errors."""
        return sum(1 for sample in self.samples if not sample.ok)


def measure(latencies_ms: Sequence[float], errors: int) -> dict[str, float]:
    """The measured figures for a set of samples (empty when there are none)."""
    if not latencies_ms:
        return {}
    figures = {key: percentile(latencies_ms, float(key[1:3])) for key in LATENCY_KEYS}
    figures["max_ms"] = max(latencies_ms)
    figures["mean_ms"] = sum(latencies_ms) / len(latencies_ms)
    figures["error_rate"] = errors / len(latencies_ms)
    return figures


def evaluate(
    target: SloTarget, latencies_ms: Sequence[float], errors: int
) -> tuple[str, dict[str, float], list[str]]:
    """``(verdict, measured, failures)`` for one test's samples against its target."""
    measured = measure(latencies_ms, errors)
    count = len(latencies_ms)
    if count < target.min_samples:
        return (
            VERDICT_TOO_FEW,
            measured,
            [f"too few samples: {count} < min_samples {target.min_samples}"],
        )
    failures = [
        f"{key}: measured {measured[key]:.3f} > target {limit:g}"
        for key, limit in target.latency_ms.items()
        if measured[key] > limit
    ]
    if target.error_rate is not None and measured["error_rate"] > target.error_rate:
        failures.append(
            f"error_rate: measured {measured['error_rate']:.4f} > target {target.error_rate:g}"
        )
    return (VERDICT_FAIL if failures else VERDICT_PASS), measured, failures
