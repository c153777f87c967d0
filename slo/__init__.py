"""slo: the SLO spec, its evaluators and the release gate (``python -m slo gate``).

The spec (:mod:`slo.spec`) declares objectives; readers (:mod:`slo.readers`) turn Locust,
pytest-plugin, pytest-benchmark and coverage outputs into measurements; :func:`evaluate` gives
each objective PASS, FAIL or NO DATA; one module per output format renders the verdict.
"""

from __future__ import annotations

import logging

from slo.errors import BaselineError, OutputError, ResultsError, SloError, SpecError
from slo.evaluate import (
    FAIL,
    NO_DATA,
    PASS,
    VERDICT_FORMAT_VERSION,
    ObjectiveResult,
    Verdict,
    evaluate,
)
from slo.gate import (
    EXIT_BAD_INPUT,
    EXIT_FAIL,
    EXIT_PASS,
    GateInputs,
    exit_code,
    run_gate,
    write_outputs,
)
from slo.percentiles import histogram_percentile, percentile
from slo.spec import Objective, Scenario, Spec, load_spec, parse_spec

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAIL",
    "EXIT_PASS",
    "FAIL",
    "NO_DATA",
    "PASS",
    "VERDICT_FORMAT_VERSION",
    "BaselineError",
    "GateInputs",
    "Objective",
    "ObjectiveResult",
    "OutputError",
    "ResultsError",
    "Scenario",
    "SloError",
    "Spec",
    "SpecError",
    "Verdict",
    "evaluate",
    "exit_code",
    "histogram_percentile",
    "load_spec",
    "parse_spec",
    "percentile",
    "run_gate",
    "write_outputs",
]
