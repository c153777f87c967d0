"""The cutover rehearsal: the real migration walked end to end on synthetic certificates, with
measurements on the real HTTP path and a Go/No-Go verdict.

``certstore rehearse`` is the command; :func:`run_rehearsal` the library call.
"""

from __future__ import annotations

from certstore.rehearsal._checklist import (
    CHECK_IDS,
    FAIL,
    GO,
    NO_GO,
    PASS,
    SKIP,
    CheckResult,
    Measure,
    Thresholds,
    ThresholdsError,
    evaluate,
    load_thresholds,
    verdict,
)
from certstore.rehearsal._environment import RehearsalError
from certstore.rehearsal._faults import FaultInjector
from certstore.rehearsal._results import RehearsalResult
from certstore.rehearsal._runner import RehearsalOptions, run_rehearsal
from certstore.rehearsal._stats import PERCENTILE_METHOD, LatencySummary, percentile
from certstore.rehearsal._synthetic import SyntheticCertificate, generate, make_pdf

__all__ = [
    "CHECK_IDS",
    "FAIL",
    "GO",
    "NO_GO",
    "PASS",
    "PERCENTILE_METHOD",
    "SKIP",
    "CheckResult",
    "FaultInjector",
    "LatencySummary",
    "Measure",
    "RehearsalError",
    "RehearsalOptions",
    "RehearsalResult",
    "SyntheticCertificate",
    "Thresholds",
    "ThresholdsError",
    "evaluate",
    "generate",
    "load_thresholds",
    "make_pdf",
    "percentile",
    "run_rehearsal",
    "verdict",
]
