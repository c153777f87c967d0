"""Judge every objective of a spec against parsed results: PASS, FAIL or NO DATA.

NO DATA is a failure, never a silent pass (k6 lets thresholds on empty metrics pass,
grafana/k6#1346): an objective gets it when its source's results were not given, its selector
matched nothing, the source cannot give that figure, or fewer than ``min_samples`` samples were
measured. With a baseline (the previous run's JSON verdict) a latency objective also FAILs when
it grew by more than its ``regression_tolerance`` share — and by more than the spec's
``regression_min_ms``, so one-bucket jitter at a few ms does not fail a release — even when it is
still within its target.

Every comparison is inclusive: a latency or error rate passes when ``measured <= target``, a
coverage floor when ``measured >= target``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from slo.readers._base import Measurement, NoMatch
from slo.readers.coverage import CoverageResults
from slo.spec import Objective, Scenario, Spec

logger = logging.getLogger(__name__)

PASS = "PASS"
FAIL = "FAIL"
NO_DATA = "NO DATA"

#: Version of the JSON verdict document (``report_json``); a baseline must carry the same.
VERDICT_FORMAT_VERSION = 1

#: The command-line option that supplies each source, for NO DATA reasons.
SOURCE_OPTIONS = {
    "locust": "--locust",
    "pytest": "--pytest",
    "benchmark": "--benchmark",
    "coverage": "--coverage",
}


@dataclass(frozen=True)
class ObjectiveResult:
    """The verdict on one objective, with what was measured and why it passed or not."""

    objective: Objective
    status: str
    measured: float | None = None
    samples: int | None = None
    reason: str = ""
    matched: tuple[str, ...] = ()
    method: str = ""
    baseline: float | None = None

    @property
    def margin(self) -> float | None:
        """Headroom to the target in the objective's unit; negative when missed."""
        if self.measured is None:
            return None
        if self.objective.comparison == "<=":
            return self.objective.target - self.measured
        return self.measured - self.objective.target

    @property
    def passed(self) -> bool:
        """True only for PASS."""
        return self.status == PASS

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form used by the verdict document."""
        objective = self.objective
        return {
            "id": objective.id,
            "scenario": objective.scenario,
            "kind": objective.kind,
            "source": objective.source,
            "selector": objective.selector,
            "comparison": objective.comparison,
            "target": objective.target,
            "measured": self.measured,
            "margin": self.margin,
            "samples": self.samples,
            "min_samples": objective.min_samples if objective.source != "coverage" else None,
            "status": self.status,
            "reason": self.reason,
            "matched": list(self.matched),
            "method": self.method,
            "baseline": self.baseline,
        }


@dataclass(frozen=True)
class Verdict:
    """Every objective's result plus what was evaluated."""

    spec_path: str
    results: tuple[ObjectiveResult, ...]
    inputs: dict[str, str] = field(default_factory=dict)
    generated_at: str = ""

    @property
    def passed(self) -> bool:
        """True when every objective passed (an empty verdict never passes)."""
        return bool(self.results) and all(result.passed for result in self.results)

    @property
    def status(self) -> str:
        """``PASS`` or ``FAIL``."""
        return PASS if self.passed else FAIL

    def counts(self) -> dict[str, int]:
        """How many objectives got each status."""
        counts = {PASS: 0, FAIL: 0, NO_DATA: 0}
        for result in self.results:
            counts[result.status] += 1
        return counts

    def failed(self) -> list[ObjectiveResult]:
        """The objectives that did not pass (FAIL and NO DATA)."""
        return [result for result in self.results if not result.passed]

    def to_dict(self) -> dict[str, Any]:
        """The verdict document (see :mod:`slo.report_json`)."""
        return {
            "format_version": VERDICT_FORMAT_VERSION,
            "generated_at": self.generated_at,
            "spec": self.spec_path,
            "inputs": dict(self.inputs),
            "status": self.status,
            "counts": self.counts(),
            "objectives": [result.to_dict() for result in self.results],
        }


def evaluate(
    spec: Spec,
    results: Mapping[str, Any],
    *,
    baseline: Mapping[str, float] | None = None,
    sources: set[str] | None = None,
    inputs: Mapping[str, str] | None = None,
) -> Verdict:
    """Judge ``spec``'s objectives against ``results`` (source name -> parsed results).

    ``sources`` limits the objectives judged (the in-run Locust verdict passes ``{"locust"}``);
    ``baseline`` maps objective ids to the previous run's measured values.
    """
    measurements: dict[str, Measurement | NoMatch] = {}
    out: list[ObjectiveResult] = []
    for objective in spec.objectives():
        if sources is not None and objective.source not in sources:
            continue
        source_results = results.get(objective.source)
        if source_results is None:
            out.append(
                ObjectiveResult(
                    objective,
                    NO_DATA,
                    reason=f"no {objective.source} results were given "
                    f"({SOURCE_OPTIONS.get(objective.source, objective.source)})",
                )
            )
            continue
        if objective.source == "coverage":
            out.append(_judge_coverage(objective, source_results))
            continue
        scenario = spec.scenario(objective.scenario)
        if scenario.name not in measurements:
            measurements[scenario.name] = source_results.measure(scenario)
        result = _judge(objective, scenario, measurements[scenario.name])
        if baseline is not None:
            result = _regression(result, baseline, spec)
        out.append(result)
    for result in out:
        logger.debug("%s: %s %s", result.objective.id, result.status, result.reason)
    return Verdict(
        spec_path=spec.path,
        results=tuple(out),
        inputs=dict(inputs or {}),
        generated_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


def _judge(
    objective: Objective, scenario: Scenario, found: Measurement | NoMatch
) -> ObjectiveResult:
    if isinstance(found, NoMatch):
        return ObjectiveResult(objective, NO_DATA, reason=found.reason)
    common = {"samples": found.samples, "matched": found.matched, "method": found.method}
    if found.samples < scenario.min_samples:
        return ObjectiveResult(
            objective,
            NO_DATA,
            reason=f"{found.samples} samples, fewer than min_samples = {scenario.min_samples}: "
            "too few to judge",
            **common,
        )
    if objective.kind == "error_rate":
        measured = found.error_rate
        if measured is None:
            return ObjectiveResult(
                objective, NO_DATA, reason="the source counts no failures", **common
            )
    else:
        value = found.latency.get(objective.kind)
        if value is None:
            why = found.unavailable.get(objective.kind, "the source does not give it")
            return ObjectiveResult(objective, NO_DATA, reason=f"{objective.kind}: {why}", **common)
        measured = value
    return _compare(objective, measured, **common)


def _compare(objective: Objective, measured: float, **common: Any) -> ObjectiveResult:
    ok = (
        measured <= objective.target
        if objective.comparison == "<="
        else measured >= objective.target
    )
    if ok:
        return ObjectiveResult(objective, PASS, measured=measured, **common)
    missed = "above" if objective.comparison == "<=" else "below"
    shown, target = format_pair(objective.kind, measured, objective.target)
    return ObjectiveResult(
        objective,
        FAIL,
        measured=measured,
        reason=f"{shown} is {missed} the target {target}",
        **common,
    )


def _judge_coverage(objective: Objective, coverage: CoverageResults) -> ObjectiveResult:
    if objective.kind == "coverage_total":
        figure = coverage.total
    else:
        found = coverage.file(objective.id.removeprefix("coverage.file:"))
        if isinstance(found, NoMatch):
            return ObjectiveResult(objective, NO_DATA, reason=found.reason)
        figure = found
    if figure.statements == 0:
        # coverage.py reports 100 % for nothing measured: a floor met by no code at all
        return ObjectiveResult(
            objective,
            NO_DATA,
            reason=f"no statements measured for {figure.matched} in {coverage.path} "
            "(coverage.py reports 100 % for an empty measurement)",
        )
    return _compare(
        objective,
        figure.percent,
        samples=figure.statements,
        matched=(figure.matched,),
        method="coverage.py percent_covered",
    )


def _regression(
    result: ObjectiveResult, baseline: Mapping[str, float], spec: Spec
) -> ObjectiveResult:
    objective = result.objective
    previous = baseline.get(objective.id)
    if not objective.is_latency or previous is None or result.measured is None:
        return result
    if result.status != PASS:
        return _replace(result, baseline=previous)
    tolerance = objective.regression_tolerance or 0.0
    growth = result.measured - previous
    # A baseline of 0 ms is real (Locust rounds anything under 0.5 ms down to 0): the
    # relative rule then holds for any growth, and regression_min_ms alone decides.
    if growth > previous * tolerance and growth > spec.regression_min_ms:
        relative = f"+{growth / previous:.0%}, " if previous > 0 else ""
        return _replace(
            result,
            status=FAIL,
            baseline=previous,
            reason=f"regressed: {format_value(objective.kind, result.measured)} against the "
            f"baseline's {format_value(objective.kind, previous)} ({relative}"
            f"tolerance {tolerance:.0%}), though within the target",
        )
    return _replace(result, baseline=previous)


def _replace(result: ObjectiveResult, **changes: Any) -> ObjectiveResult:
    return replace(result, **changes)


def format_value(kind: str, value: float | None, decimals: int | None = None) -> str:
    """A measured or target value in its unit: ``42.0 ms``, ``0.50 %``, ``91.3 %``
    (``decimals`` more when two values must not print alike)."""
    if value is None:
        return "-"
    value += 0.0  # no "-0.0"
    if kind == "error_rate":
        return f"{value * 100:.{2 if decimals is None else decimals}f} %"
    places = 1 if decimals is None else decimals
    if kind.startswith("coverage"):
        return f"{value:.{places}f} %"
    return f"{value:.{places}f} ms"


def format_pair(kind: str, measured: float, target: float) -> tuple[str, str]:
    """Both values with as many decimals as it takes to tell them apart (up to 6), so a miss
    by 0.01 ms does not read "38.0 ms is above the target 38.0 ms"."""
    default = 2 if kind == "error_rate" else 1
    for decimals in range(default, 7):
        pair = format_value(kind, measured, decimals), format_value(kind, target, decimals)
        if pair[0] != pair[1] or measured == target:
            return pair
    return pair


def format_margin(kind: str, margin: float | None) -> str:
    """A margin with its sign: ``+35.0 ms`` of headroom, ``-100.0 ms`` missed (never a
    ``-0.0`` for a miss too small for one decimal)."""
    if margin is None:
        return "-"
    scale = 100 if kind == "error_rate" else 1
    decimals = 2 if kind == "error_rate" else 1
    while decimals < 6 and margin and round(abs(margin) * scale, decimals) == 0:
        decimals += 1
    return ("+" if margin >= 0 else "-") + format_value(kind, abs(margin), decimals)
