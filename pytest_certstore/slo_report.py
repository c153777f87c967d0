"""SLO results: one plain dict per judged test, the table, the summary, the JSON report.

Results are plain dicts so pytest-xdist workers can ship them to the controller through
``config.workeroutput`` (read back in ``pytest_testnodedown``). The controller re-judges every
result from its raw samples with the same code a serial run uses, so ``-n 2`` and a serial run
produce the same verdicts and the same report (apart from ``created`` and ``worker``).

The JSON document (``--slo-report PATH``), read by ``slo gate``::

    {"format_version": 1, "generator": "pytest_certstore", "mode": "enforce",
     "percentile_method": "linear", "created": "2026-11-21T22:00:00+00:00",
     "summary": {"objectives": 2, "pass": 1, "fail": 1, "too_few_samples": 0, "error": 0},
     "objectives": [{"test_id": ..., "name": ..., "source": "slo_sampler", "target": {...},
                     "measured": {...}, "samples": 30, "errors": 0, "verdict": "pass",
                     "failures": [], "warnings": [], "worker": "gw0", "latencies_ms": [...]}]}
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_certstore.slo_marker import (
    LATENCY_KEYS,
    PERCENTILE_METHOD,
    VERDICT_ERROR,
    VERDICT_FAIL,
    VERDICT_PASS,
    VERDICT_TOO_FEW,
    SloTarget,
    evaluate,
)

FORMAT_VERSION = 1
VERDICTS = (VERDICT_PASS, VERDICT_FAIL, VERDICT_TOO_FEW, VERDICT_ERROR)
WORKEROUTPUT_KEY = "certstore_slo_results"


def build_result(
    *,
    test_id: str,
    target: SloTarget,
    latencies_ms: list[float],
    errors: int,
    source: str,
    warnings: list[str],
    worker: str,
    test_error: str | None = None,
) -> dict[str, Any]:
    """Judge one test and return its result as plain data."""
    verdict, measured, failures = evaluate(target, latencies_ms, errors)
    if test_error is not None:
        verdict = VERDICT_ERROR
        failures = [f"the test itself failed before the SLO could be judged: {test_error}"]
    return {
        "test_id": test_id,
        "name": target.name or test_id,
        "source": source,
        "target": target.as_dict(),
        "measured": {k: round(v, 6) for k, v in measured.items()},
        "samples": len(latencies_ms),
        "errors": errors,
        "verdict": verdict,
        "failures": failures,
        "warnings": list(warnings),
        "worker": worker,
        "latencies_ms": [round(ms, 6) for ms in latencies_ms],
    }


def rejudge(result: Mapping[str, Any]) -> dict[str, Any]:
    """Recompute a shipped result's verdict from its raw samples (the controller's check)."""
    target_data = dict(result["target"])
    target = SloTarget(
        {k: float(v) for k, v in target_data.items() if k in LATENCY_KEYS},
        target_data.get("error_rate"),
        int(target_data.get("min_samples", 1)),
        result.get("name") if result.get("name") != result.get("test_id") else None,
    )
    if result["verdict"] == VERDICT_ERROR:
        return dict(result)
    fresh = build_result(
        test_id=result["test_id"],
        target=target,
        latencies_ms=list(result["latencies_ms"]),
        errors=int(result["errors"]),
        source=result["source"],
        warnings=list(result["warnings"]),
        worker=result["worker"],
    )
    return fresh


def format_table(result: Mapping[str, Any]) -> str:
    """Measured against target, one line per objective."""
    measured = result["measured"]
    lines = [
        f"SLO {result['name']} ({result['source']}, {result['samples']} samples, "
        f"{result['errors']} errors): {result['verdict'].upper()}",
        f"  {'objective':<12}{'target':>12}{'measured':>12}  verdict",
    ]
    for key, limit in result["target"].items():
        if key == "min_samples":
            ok = result["samples"] >= limit
            lines.append(
                f"  {'samples':<12}{'>= ' + str(limit):>12}{result['samples']:>12}  "
                f"{'ok' if ok else 'TOO FEW'}"
            )
            continue
        got = measured.get(key)
        if got is None:
            lines.append(f"  {key:<12}{limit:>12g}{'-':>12}  -")
            continue
        fmt = ".4f" if key == "error_rate" else ".3f"
        lines.append(f"  {key:<12}{limit:>12g}{got:>12{fmt}}  {'ok' if got <= limit else 'FAIL'}")
    for warning in result["warnings"]:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


class SloCollector:
    """Every SLO result of this process (and, on the xdist controller, of all workers)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._lock = threading.Lock()
        self._results: dict[str, dict[str, Any]] = {}

    def add(self, result: Mapping[str, Any]) -> None:
        """Keep one result (a re-run of the same test id replaces the earlier one)."""
        with self._lock:
            self._results[str(result["test_id"])] = dict(result)

    def merge(self, shipped: Iterable[Mapping[str, Any]]) -> None:
        """Add results a worker shipped, each re-judged from its samples."""
        for result in shipped:
            self.add(rejudge(result))

    @property
    def results(self) -> list[dict[str, Any]]:
        """All results, sorted by test id (stable across serial and xdist runs)."""
        with self._lock:
            return [self._results[key] for key in sorted(self._results)]

    def summary(self) -> dict[str, int]:
        """Count of objectives per verdict."""
        counts = {"objectives": 0, **dict.fromkeys(VERDICTS, 0)}
        for result in self.results:
            counts["objectives"] += 1
            counts[result["verdict"]] += 1
        return counts

    def document(self) -> dict[str, Any]:
        """The versioned JSON report."""
        return {
            "format_version": FORMAT_VERSION,
            "generator": "pytest_certstore",
            "mode": self.mode,
            "percentile_method": PERCENTILE_METHOD,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "summary": self.summary(),
            "objectives": self.results,
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`document` atomically (temp file + rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # created like any file (666 less the umask): mkstemp's 600 would leave a CI artifact
        # its uploader or a colleague's account cannot read
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with temp.open("w", encoding="utf-8") as handle:
                json.dump(self.document(), handle, indent=2, ensure_ascii=False)
                handle.write("\n")
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return target

    def summary_lines(self) -> list[str]:
        """The terminal summary: every SLO's table, then the totals."""
        lines: list[str] = []
        for result in self.results:
            lines.append(format_table(result))
        counts = self.summary()
        lines.append(
            f"{counts['objectives']} SLO(s): {counts[VERDICT_PASS]} pass, "
            f"{counts[VERDICT_FAIL]} fail, {counts[VERDICT_TOO_FEW]} too few samples, "
            f"{counts[VERDICT_ERROR]} error (mode {self.mode}, percentiles {PERCENTILE_METHOD})"
        )
        return lines


class XdistSloHooks:
    """Controller-side xdist hook: collect what each worker shipped when it goes down."""

    def __init__(self, collector: SloCollector) -> None:
        self.collector = collector

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self.collector.merge(output.get(WORKEROUTPUT_KEY, []))
