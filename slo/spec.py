"""The SLO spec: one TOML file of objectives, loaded and validated up front.

A spec names *scenarios* (one selector into one source's results plus any of the latency, error
rate and sample-count limits) and *coverage* floors. Each limit becomes one objective with an id
such as ``upload.p95_ms`` or ``coverage.file:certstore/storage.py``; the gate reports one verdict
per objective. Validation is strict because a typo must never weaken a gate: an unknown field, a
wrong type, a limit out of range or two percentile targets that contradict each other (a p95
above the p99) is a :class:`~slo.errors.SpecError` naming the file, the objective and the field.

Whether a selector matches anything can only be known against results, so that is decided at
evaluation: a selector that matches nothing makes its objectives ``NO DATA``, which fails the
gate (see :mod:`slo.evaluate`).
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slo.errors import SpecError
from slo.percentiles import PERCENTILE_FIELDS

#: The spec format this code reads (top-level ``format_version``; optional, defaults to it).
SPEC_FORMAT_VERSION = 1

#: Where the gate looks for the spec when ``--spec`` is not given.
DEFAULT_SPEC_PATH = "slo.toml"

SOURCES = ("locust", "pytest", "benchmark")

#: Selector fields each source accepts; ``None`` marks the required one.
_SELECTOR_FIELDS: dict[str, dict[str, bool]] = {
    "locust": {"name": True, "request_type": False},
    "pytest": {"test": True},
    "benchmark": {"benchmark": True},
}

LATENCY_FIELDS = tuple(PERCENTILE_FIELDS)
LIMIT_FIELDS = (*LATENCY_FIELDS, "error_rate")
_SCENARIO_FIELDS = {
    "source",
    "description",
    "min_samples",
    "regression_tolerance",
    *LIMIT_FIELDS,
    *(name for fields in _SELECTOR_FIELDS.values() for name in fields),
}
_TOP_FIELDS = {"format_version", "gate", "scenarios", "coverage"}
_GATE_FIELDS = {"regression_tolerance", "regression_min_ms"}
_COVERAGE_FIELDS = {"total", "files"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

#: Default share by which a latency may grow against the baseline before it fails.
DEFAULT_REGRESSION_TOLERANCE = 0.20
#: Default absolute growth (ms) below which a regression is ignored as measurement noise.
DEFAULT_REGRESSION_MIN_MS = 2.0


@dataclass(frozen=True)
class Scenario:
    """One selector into one source's results, and the limits that apply to what it selects."""

    name: str
    source: str
    limits: dict[str, float]
    min_samples: int = 1
    request_type: str | None = None
    request_name: str | None = None
    test: str | None = None
    benchmark: str | None = None
    regression_tolerance: float | None = None
    description: str = ""

    def selector(self) -> str:
        """The selector in words, for reports and error messages."""
        if self.source == "locust":
            kind = self.request_type if self.request_type is not None else "any type"
            return f"locust {kind} {self.request_name!r}"
        if self.source == "pytest":
            return f"pytest test {self.test!r}"
        return f"benchmark {self.benchmark!r}"


@dataclass(frozen=True)
class Objective:
    """One limit on one measured figure: the unit the gate gives a verdict on."""

    id: str
    scenario: str
    kind: str
    target: float
    comparison: str
    source: str
    selector: str
    min_samples: int = 1
    regression_tolerance: float | None = None

    @property
    def is_latency(self) -> bool:
        """True for the p50/p95/p99/max objectives (the ones a baseline can regress)."""
        return self.kind in LATENCY_FIELDS


@dataclass(frozen=True)
class Spec:
    """A validated SLO spec."""

    path: str
    scenarios: tuple[Scenario, ...] = ()
    coverage_total: float | None = None
    coverage_files: dict[str, float] = field(default_factory=dict)
    regression_tolerance: float = DEFAULT_REGRESSION_TOLERANCE
    regression_min_ms: float = DEFAULT_REGRESSION_MIN_MS

    def objectives(self) -> list[Objective]:
        """Every objective, in spec order: scenarios first, then coverage."""
        result: list[Objective] = []
        for scenario in self.scenarios:
            tolerance = (
                scenario.regression_tolerance
                if scenario.regression_tolerance is not None
                else self.regression_tolerance
            )
            for kind in LIMIT_FIELDS:
                if kind in scenario.limits:
                    result.append(
                        Objective(
                            id=f"{scenario.name}.{kind}",
                            scenario=scenario.name,
                            kind=kind,
                            target=scenario.limits[kind],
                            comparison="<=",
                            source=scenario.source,
                            selector=scenario.selector(),
                            min_samples=scenario.min_samples,
                            regression_tolerance=tolerance,
                        )
                    )
        if self.coverage_total is not None:
            result.append(
                Objective(
                    id="coverage.total",
                    scenario="coverage",
                    kind="coverage_total",
                    target=self.coverage_total,
                    comparison=">=",
                    source="coverage",
                    selector="coverage total",
                )
            )
        for path, floor in self.coverage_files.items():
            result.append(
                Objective(
                    id=f"coverage.file:{path}",
                    scenario="coverage",
                    kind="coverage_file",
                    target=floor,
                    comparison=">=",
                    source="coverage",
                    selector=f"coverage file {path}",
                )
            )
        return result

    def scenario(self, name: str) -> Scenario:
        """The scenario called ``name`` (KeyError if there is none)."""
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise KeyError(name)

    def sources(self) -> set[str]:
        """The sources the objectives need results from (``coverage`` included)."""
        needed = {scenario.source for scenario in self.scenarios}
        if self.coverage_total is not None or self.coverage_files:
            needed.add("coverage")
        return needed


def load_spec(path: str | Path = DEFAULT_SPEC_PATH) -> Spec:
    """Read and validate the spec at ``path``."""
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError("no such file", path=shown) from None
    except OSError as err:
        raise SpecError(f"cannot read: {err.strerror or err}", path=shown) from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise SpecError(f"not UTF-8 text ({err.reason})", path=shown) from err
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"not valid TOML: {err}", path=shown) from err
    return parse_spec(data, path=shown)


def parse_spec(data: dict[str, Any], *, path: str = "<spec>") -> Spec:
    """Validate an already-parsed spec document (``path`` is only used in messages)."""
    _reject_unknown(data, _TOP_FIELDS, path=path, objective=None)
    version = data.get("format_version", SPEC_FORMAT_VERSION)
    if not _is_int(version) or version != SPEC_FORMAT_VERSION:
        raise SpecError(
            f"unsupported format_version {version!r} (this slo reads {SPEC_FORMAT_VERSION})",
            path=path,
            field="format_version",
        )

    gate = _table(data.get("gate", {}), path=path, objective="gate", field=None)
    _reject_unknown(gate, _GATE_FIELDS, path=path, objective="gate")
    tolerance = _number(
        gate.get("regression_tolerance", DEFAULT_REGRESSION_TOLERANCE),
        path=path,
        objective="gate",
        field="regression_tolerance",
        minimum=0.0,
    )
    min_ms = _number(
        gate.get("regression_min_ms", DEFAULT_REGRESSION_MIN_MS),
        path=path,
        objective="gate",
        field="regression_min_ms",
        minimum=0.0,
    )

    scenarios_table = _table(
        data.get("scenarios", {}), path=path, objective=None, field="scenarios"
    )
    scenarios = tuple(
        _parse_scenario(name, body, path=path) for name, body in scenarios_table.items()
    )

    coverage = _table(data.get("coverage", {}), path=path, objective="coverage", field=None)
    _reject_unknown(coverage, _COVERAGE_FIELDS, path=path, objective="coverage")
    total = None
    if "total" in coverage:
        total = _percent(coverage["total"], path=path, objective="coverage", field="total")
    files_table = _table(coverage.get("files", {}), path=path, objective="coverage", field="files")
    files: dict[str, float] = {}
    for file_path, floor in files_table.items():
        if not file_path.strip():
            raise SpecError("empty file path", path=path, objective="coverage.files")
        files[file_path] = _percent(floor, path=path, objective="coverage.files", field=file_path)

    spec = Spec(
        path=path,
        scenarios=scenarios,
        coverage_total=total,
        coverage_files=files,
        regression_tolerance=tolerance,
        regression_min_ms=min_ms,
    )
    if not spec.objectives():
        raise SpecError(
            "defines no objectives: add a [scenarios.NAME] table or a [coverage] floor",
            path=path,
        )
    return spec


def _parse_scenario(name: str, body: Any, *, path: str) -> Scenario:
    objective = f"scenarios.{name}"
    if not _NAME_RE.match(name) or name == "coverage":
        raise SpecError(
            "scenario names are letters, digits, '_' and '-' (and not 'coverage')",
            path=path,
            objective=objective,
        )
    body = _table(body, path=path, objective=objective, field=None)
    _reject_unknown(body, _SCENARIO_FIELDS, path=path, objective=objective)

    source = body.get("source")
    if source is None:
        raise SpecError(
            f"missing (one of {', '.join(SOURCES)})", path=path, objective=objective, field="source"
        )
    if source not in SOURCES:
        raise SpecError(
            f"{source!r} is not a source (one of {', '.join(SOURCES)})",
            path=path,
            objective=objective,
            field="source",
        )
    allowed = _SELECTOR_FIELDS[source]
    for other in {n for fields in _SELECTOR_FIELDS.values() for n in fields} - set(allowed):
        if other in body:
            raise SpecError(
                f"is not a selector of source {source!r} (it takes {', '.join(sorted(allowed))})",
                path=path,
                objective=objective,
                field=other,
            )
    selector: dict[str, str] = {}
    for selector_field, required in allowed.items():
        if selector_field not in body:
            if required:
                raise SpecError(
                    f"missing: source {source!r} needs it to select results",
                    path=path,
                    objective=objective,
                    field=selector_field,
                )
            continue
        value = body[selector_field]
        if not isinstance(value, str) or not value:
            raise SpecError(
                f"must be a non-empty string, got {value!r}",
                path=path,
                objective=objective,
                field=selector_field,
            )
        selector[selector_field] = value

    limits: dict[str, float] = {}
    for kind in LATENCY_FIELDS:
        if kind in body:
            limits[kind] = _number(
                body[kind], path=path, objective=objective, field=kind, minimum=0.0, positive=True
            )
    if "error_rate" in body:
        if source == "benchmark":
            raise SpecError(
                "pytest-benchmark records no failures; error_rate needs locust or pytest",
                path=path,
                objective=objective,
                field="error_rate",
            )
        limits["error_rate"] = _number(
            body["error_rate"],
            path=path,
            objective=objective,
            field="error_rate",
            minimum=0.0,
            maximum=1.0,
        )
    if not limits:
        raise SpecError(
            f"no limit: give any of {', '.join(LIMIT_FIELDS)}", path=path, objective=objective
        )
    given = [kind for kind in LATENCY_FIELDS if kind in limits]
    for lower, higher in itertools.pairwise(given):
        if limits[lower] > limits[higher]:
            raise SpecError(
                f"{lower} = {limits[lower]:g} is above {higher} = {limits[higher]:g}; "
                f"a {lower[:-3]} can never exceed a {higher[:-3]}, so one target is wrong",
                path=path,
                objective=objective,
                field=lower,
            )

    min_samples = body.get("min_samples", 1)
    if not _is_int(min_samples) or min_samples < 1:
        raise SpecError(
            f"must be an integer >= 1, got {min_samples!r}",
            path=path,
            objective=objective,
            field="min_samples",
        )
    tolerance = None
    if "regression_tolerance" in body:
        tolerance = _number(
            body["regression_tolerance"],
            path=path,
            objective=objective,
            field="regression_tolerance",
            minimum=0.0,
        )
    description = body.get("description", "")
    if not isinstance(description, str):
        raise SpecError(
            f"must be a string, got {description!r}",
            path=path,
            objective=objective,
            field="description",
        )
    return Scenario(
        name=name,
        source=source,
        limits=limits,
        min_samples=int(min_samples),
        request_type=selector.get("request_type"),
        request_name=selector.get("name"),
        test=selector.get("test"),
        benchmark=selector.get("benchmark"),
        regression_tolerance=tolerance,
        description=description,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _table(value: Any, *, path: str, objective: str | None, field: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(
            f"must be a table, got {type(value).__name__} {value!r}",
            path=path,
            objective=objective,
            field=field,
        )
    return value


def _reject_unknown(
    table: dict[str, Any], allowed: set[str], *, path: str, objective: str | None
) -> None:
    for name in table:
        if name not in allowed:
            raise SpecError(
                f"unknown field (allowed: {', '.join(sorted(allowed))})",
                path=path,
                objective=objective,
                field=name,
            )


def _number(
    value: Any,
    *,
    path: str,
    objective: str,
    field: str,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(
            f"must be a number, got {type(value).__name__} {value!r}",
            path=path,
            objective=objective,
            field=field,
        )
    number = float(value)
    if positive and number <= 0:
        raise SpecError(f"must be > 0, got {value!r}", path=path, objective=objective, field=field)
    if minimum is not None and number < minimum:
        raise SpecError(
            f"must be >= {minimum:g}, got {value!r}", path=path, objective=objective, field=field
        )
    if maximum is not None and number > maximum:
        hint = " (a fraction: 0.01 is 1 %)" if field == "error_rate" else ""
        raise SpecError(
            f"must be <= {maximum:g}, got {value!r}{hint}",
            path=path,
            objective=objective,
            field=field,
        )
    return number


def _percent(value: Any, *, path: str, objective: str, field: str) -> float:
    return _number(value, path=path, objective=objective, field=field, minimum=0.0, maximum=100.0)
