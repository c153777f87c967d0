"""The Go/No-Go checklist: measured values against thresholds, one verdict.

Thresholds come from the background package (upload p95 <= 75 ms, p99 <= 120 ms, URL p95 <= 50
ms, hash success >= 99.9 %, error rate < 1 %) plus the runbooks' read-primary gate (download p95
< 500 ms including the presigned fetch, fallback < 1 %) and consistency 100 %. Any of them can be
overridden by a TOML file (see ``docs/examples/go-no-go.toml``); an unknown key there is an
error, so a typo cannot silently keep a default.

Each check ends PASS, FAIL or SKIP. SKIP is only for a step the operator chose not to run (it is
printed, never hidden); a step that could not run is a FAIL with the reason. The verdict is GO
only when no check failed.
"""

from __future__ import annotations

import math
import operator
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from certstore.errors import CertstoreError, ConfigError

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"
GO = "GO"
NO_GO = "NO-GO"

FLAG_NAMES = ("dual_write", "read_primary", "backfill_enabled", "s3_only")


class ThresholdsError(ConfigError):
    """A thresholds file is unreadable, or holds an unknown or impossible threshold. A usage
    error (exit 2), so CI can tell a broken thresholds file from a NO-GO (exit 1)."""

    def __init__(self, message: str, *, path: str, key: str | None = None) -> None:
        CertstoreError.__init__(self, message, path=path, key=key, variable="--thresholds")


@dataclass(frozen=True)
class Thresholds:
    """Every Go/No-Go threshold; the defaults are the background package's."""

    upload_p95_ms: float = 75.0
    upload_p99_ms: float = 120.0
    url_p95_ms: float = 50.0
    download_p95_ms: float = 500.0
    hash_success_min_percent: float = 99.9
    error_rate_max_percent: float = 1.0
    fallback_rate_max_percent: float = 1.0
    consistency_min_percent: float = 100.0
    #: Flag states production must be in while the rehearsal is run (before the cutover).
    expected_flags: Mapping[str, bool] = field(
        default_factory=lambda: dict.fromkeys(FLAG_NAMES, False)
    )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["expected_flags"] = dict(self.expected_flags)
        return values


def load_thresholds(path: str | Path) -> Thresholds:
    """Thresholds from a TOML file: keys at the top level or under ``[thresholds]``, flags
    under ``[expected_flags]``; anything not given keeps its default."""
    text_path = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ThresholdsError(
            f"thresholds file {text_path!r} cannot be read: {err.strerror}", path=text_path
        ) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ThresholdsError(
            f"thresholds file {text_path!r} is not valid TOML: {err}", path=text_path
        ) from err
    table = data.pop("thresholds", {})
    if not isinstance(table, dict):
        raise ThresholdsError(
            f"thresholds file {text_path!r}: 'thresholds' must be a table ([thresholds])",
            path=text_path,
            key="thresholds",
        )
    values = dict(table)
    flags = data.pop("expected_flags", None)
    values.update(data)
    numeric = {f.name for f in fields(Thresholds)} - {"expected_flags"}
    updates: dict[str, Any] = {}
    for key, value in values.items():
        if key not in numeric:
            raise ThresholdsError(
                f"thresholds file {text_path!r}: unknown threshold {key!r} "
                f"(known: {', '.join(sorted(numeric))}, [expected_flags])",
                path=text_path,
                key=key,
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ThresholdsError(
                f"thresholds file {text_path!r}: {key} = {value!r} must be a finite number >= 0",
                path=text_path,
                key=key,
            )
        if key.endswith("_percent") and value > 100:
            raise ThresholdsError(
                f"thresholds file {text_path!r}: {key} = {value!r} is a percentage: at most 100",
                path=text_path,
                key=key,
            )
        updates[key] = float(value)
    if flags is not None:
        expected = dict(Thresholds().expected_flags)
        if not isinstance(flags, dict):
            raise ThresholdsError(
                f"thresholds file {text_path!r}: [expected_flags] must be a table",
                path=text_path,
                key="expected_flags",
            )
        for name, value in flags.items():
            short = name.lower().removeprefix("cert_s3_")
            short = "s3_only" if short == "only" else short
            if short not in FLAG_NAMES or not isinstance(value, bool):
                raise ThresholdsError(
                    f"thresholds file {text_path!r}: [expected_flags] {name} = {value!r}: "
                    f"flags are {', '.join(FLAG_NAMES)} and values true/false",
                    path=text_path,
                    key=name,
                )
            expected[short] = value
        updates["expected_flags"] = expected
    for check in _NUMERIC:
        value = updates.get(check.attribute)
        if value is not None and value <= 0 and (check.op is operator.lt or check.unit == "ms"):
            raise ThresholdsError(
                f"thresholds file {text_path!r}: {check.attribute} = {value:g} could never "
                f"pass (the check is '{check.title} {check.symbol} {value:g} {check.unit}'); "
                "use a value above 0",
                path=text_path,
                key=check.attribute,
            )
    thresholds = replace(Thresholds(), **updates)
    if thresholds.upload_p95_ms > thresholds.upload_p99_ms:
        raise ThresholdsError(
            f"thresholds file {text_path!r}: upload_p95_ms {thresholds.upload_p95_ms:g} is above "
            f"upload_p99_ms {thresholds.upload_p99_ms:g} (a 95th percentile is never above the "
            "99th)",
            path=text_path,
            key="upload_p95_ms",
        )
    return thresholds


@dataclass(frozen=True)
class Measure:
    """What the rehearsal measured for one check.

    ``value`` is a number or a bool; ``display`` how to print it; ``skip`` a reason the step was
    deliberately not run; ``fail`` a reason it could not run (both leave ``value`` None).
    """

    value: float | bool | None
    display: str | None = None
    note: str = ""
    skip: str | None = None
    fail: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """One line of the checklist."""

    id: str
    title: str
    status: str
    measured: str
    threshold: str
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON-ready view."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "measured": self.measured,
            "threshold": self.threshold,
            "note": self.note,
        }


@dataclass(frozen=True)
class _Numeric:
    id: str
    title: str
    attribute: str
    op: Callable[[float, float], bool]
    symbol: str
    unit: str


_NUMERIC: tuple[_Numeric, ...] = (
    _Numeric("upload_p95", "Upload p95", "upload_p95_ms", operator.le, "<=", "ms"),
    _Numeric("upload_p99", "Upload p99", "upload_p99_ms", operator.le, "<=", "ms"),
    _Numeric("url_p95", "URL generation p95", "url_p95_ms", operator.le, "<=", "ms"),
    _Numeric("download_p95", "Presigned download p95", "download_p95_ms", operator.le, "<=", "ms"),
    _Numeric("hash_success", "Hash success", "hash_success_min_percent", operator.ge, ">=", "%"),
    _Numeric("error_rate", "Error rate", "error_rate_max_percent", operator.lt, "<", "%"),
    _Numeric(
        "fallback_rate", "Read fallback rate", "fallback_rate_max_percent", operator.lt, "<", "%"
    ),
    _Numeric(
        "consistency",
        "Consistency (catalog vs S3)",
        "consistency_min_percent",
        operator.ge,
        ">=",
        "%",
    ),
)

_BOOLEAN: tuple[tuple[str, str, str], ...] = (
    ("completed", "Rehearsal completed every phase", "all phases, within the time limit"),
    ("backfill_complete", "Backfill verified every catalogued object", "all migrated, 0 errors"),
    ("fallback_probe", "Forced fallback served from local", "served + counted"),
    ("lifecycle_valid", "Lifecycle policy valid on the bucket", "matches policy"),
    ("production_flags", "Production flags in the expected state", "expected states"),
    ("rehearsal_flags", "Rehearsal ended in phase 2 (read-primary)", "dual_write+read_primary"),
)

#: Every check id, in report order.
CHECK_IDS: tuple[str, ...] = tuple(c.id for c in _NUMERIC) + tuple(b[0] for b in _BOOLEAN)


def _format(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.2f} %" if value < 99.995 or value == 100 else f"{value:.3f} %"
    decimals = 1
    while decimals < 6 and value and round(value, decimals) == 0:
        decimals += 1  # a 0.001 ms threshold is not "<= 0.0 ms"
    return f"{value:.{decimals}f} {unit}"


def _unmeasured(
    check_id: str, title: str, threshold: str, measure: Measure | None
) -> CheckResult | None:
    if measure is None:
        return CheckResult(
            check_id,
            title,
            FAIL,
            "not measured",
            threshold,
            "the rehearsal produced no value for this check",
        )
    if measure.skip is not None:
        return CheckResult(check_id, title, SKIP, "-", threshold, measure.skip)
    if measure.fail is not None or measure.value is None:
        return CheckResult(
            check_id,
            title,
            FAIL,
            measure.display or "not measured",
            threshold,
            measure.fail or measure.note or "no value",
        )
    return None


def evaluate(
    measures: Mapping[str, Measure], thresholds: Thresholds | None = None
) -> list[CheckResult]:
    """One :class:`CheckResult` per check id, in :data:`CHECK_IDS` order."""
    thresholds = thresholds or Thresholds()
    results: list[CheckResult] = []
    for check in _NUMERIC:
        limit = float(getattr(thresholds, check.attribute))
        threshold = f"{check.symbol} {_format(limit, check.unit)}"
        measure = measures.get(check.id)
        early = _unmeasured(check.id, check.title, threshold, measure)
        if early is not None:
            results.append(early)
            continue
        assert measure is not None
        value = float(measure.value)  # type: ignore[arg-type]
        status = PASS if check.op(value, limit) else FAIL
        results.append(
            CheckResult(
                check.id,
                check.title,
                status,
                measure.display or _format(value, check.unit),
                threshold,
                measure.note,
            )
        )
    for check_id, title, threshold in _BOOLEAN:
        measure = measures.get(check_id)
        if check_id == "production_flags":
            threshold = " ".join(
                f"{k}={str(v).lower()}" for k, v in thresholds.expected_flags.items()
            )
        early = _unmeasured(check_id, title, threshold, measure)
        if early is not None:
            results.append(early)
            continue
        assert measure is not None
        status = PASS if measure.value is True else FAIL
        results.append(
            CheckResult(
                check_id,
                title,
                status,
                measure.display or ("yes" if measure.value else "no"),
                threshold,
                measure.note,
            )
        )
    return results


def verdict(results: list[CheckResult]) -> str:
    """GO when no check failed, NO-GO otherwise."""
    return NO_GO if any(r.status == FAIL for r in results) else GO


def flags_measure(
    actual: Mapping[str, bool], expected: Mapping[str, bool], *, source: str
) -> Measure:
    """Compare flag states; the display lists each flag, the note each mismatch."""
    display = " ".join(f"{k}={str(actual.get(k)).lower()}" for k in expected)
    wrong = [
        f"{k} is {str(actual.get(k)).lower()}, expected {str(v).lower()}"
        for k, v in expected.items()
        if actual.get(k) != v
    ]
    note = f"{source}; " + ("; ".join(wrong) if wrong else "all as expected")
    return Measure(not wrong, display, note)
