"""The release gate as a library call: read the inputs, evaluate, write the outputs.

:mod:`slo.cli` is a thin layer over :func:`run_gate` and :func:`write_outputs`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slo.evaluate import Verdict, evaluate
from slo.readers import read_benchmark_json, read_coverage_json, read_locust, read_pytest_report
from slo.report_json import load_baseline, write_json
from slo.report_junit import write_junit
from slo.report_markdown import write_markdown
from slo.spec import load_spec

logger = logging.getLogger(__name__)

#: Exit codes of ``slo gate`` (and of a Locust run with ``--slo-spec``).
EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2

#: File names written into ``--out-dir``.
OUTPUT_FILES = {
    "json": "slo-verdict.json",
    "markdown": "slo-summary.md",
    "junit": "slo-junit.xml",
    "png": "slo-chart.png",
}

_READERS = {
    "locust": read_locust,
    "pytest": read_pytest_report,
    "benchmark": read_benchmark_json,
    "coverage": read_coverage_json,
}


@dataclass(frozen=True)
class GateInputs:
    """Paths the gate reads; ``None`` means that source was not given."""

    spec: str
    locust: str | None = None
    pytest: str | None = None
    coverage: str | None = None
    benchmark: str | None = None
    baseline: str | None = None

    def sources(self) -> dict[str, str]:
        """Source name -> path, for the sources that were given."""
        given = {
            "locust": self.locust,
            "pytest": self.pytest,
            "benchmark": self.benchmark,
            "coverage": self.coverage,
        }
        return {name: path for name, path in given.items() if path is not None}


def read_results(paths: Mapping[str, str]) -> dict[str, Any]:
    """Parse every given results file (any problem is a :class:`~slo.errors.ResultsError`)."""
    return {source: _READERS[source](path) for source, path in paths.items()}


def run_gate(inputs: GateInputs) -> Verdict:
    """Load the spec, read every given input and the baseline, and evaluate."""
    spec = load_spec(inputs.spec)
    results = read_results(inputs.sources())
    baseline = load_baseline(inputs.baseline) if inputs.baseline else None
    recorded = dict(inputs.sources())
    if inputs.baseline:
        recorded["baseline"] = inputs.baseline
    return evaluate(spec, results, baseline=baseline, inputs=recorded)


def exit_code(verdict: Verdict) -> int:
    """``EXIT_PASS`` when every objective passed, else ``EXIT_FAIL``."""
    return EXIT_PASS if verdict.passed else EXIT_FAIL


def check_writable_folder(folder: str | Path) -> None:
    """Refuse an output folder that cannot be written (:class:`~slo.errors.OutputError`),
    before any input is read or any load is sent: finding out after the run loses its
    verdict."""
    import tempfile

    from slo.errors import OutputError

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".slo-probe-"):
            pass
    except OSError as err:
        raise OutputError(err.strerror or str(err), path=str(folder)) from err


def write_outputs(verdict: Verdict, out_dir: str | Path, *, png: bool = True) -> dict[str, Path]:
    """Write the JSON verdict, Markdown, JUnit XML and (unless ``png=False``) the chart."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    written = {
        "json": write_json(verdict, directory / OUTPUT_FILES["json"]),
        "markdown": write_markdown(verdict, directory / OUTPUT_FILES["markdown"]),
        "junit": write_junit(verdict, directory / OUTPUT_FILES["junit"]),
    }
    if png:
        from slo.report_png import write_png

        written["png"] = write_png(verdict, directory / OUTPUT_FILES["png"])
    for kind, path in written.items():
        logger.info("wrote %s %s", kind, path)
    return written
