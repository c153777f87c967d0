"""What every reader hands to the evaluator: one :class:`Measurement` per scenario selector.

A reader turns one tool's output file into a :class:`SourceResults`; the evaluator asks it to
``measure`` a scenario and gets either a :class:`Measurement` or a :class:`NoMatch` saying why
nothing was selected (and what was there, so a typo in a selector is easy to spot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from slo.errors import ResultsError
from slo.spec import Scenario


@dataclass(frozen=True)
class Measurement:
    """The figures a source holds for one selector.

    ``latency`` maps ``p50_ms``/``p95_ms``/``p99_ms``/``max_ms`` to milliseconds; a figure the
    source cannot give is absent and ``unavailable`` says why. ``failures`` is ``None`` when the
    source does not count failures. ``rate`` overrides ``failures / samples`` when a reader
    combines records whose sample counts differ (see :mod:`slo.readers.pytest_report`).
    """

    samples: int
    failures: int | None
    latency: dict[str, float]
    matched: tuple[str, ...]
    unavailable: dict[str, str] = field(default_factory=dict)
    method: str = ""
    rate: float | None = None

    @property
    def error_rate(self) -> float | None:
        """``rate`` when the reader set one, else failures over samples (``None`` if unknown)."""
        if self.rate is not None:
            return self.rate
        if self.failures is None or self.samples <= 0:
            return None
        return self.failures / self.samples


@dataclass(frozen=True)
class NoMatch:
    """The selector matched nothing usable; ``reason`` says what and why."""

    reason: str


class SourceResults(Protocol):
    """One source's parsed results."""

    source: str
    path: str

    def measure(self, scenario: Scenario) -> Measurement | NoMatch:
        """The figures for ``scenario``'s selector."""
        ...


def read_json(path: str | Path, *, source: str) -> Any:
    """Parse a JSON results file; a missing or broken file is a :class:`ResultsError`."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(
            "no such file (a missing results file is an error, not a pass)",
            path=shown,
            source=source,
        ) from None
    except IsADirectoryError:
        raise ResultsError(
            "is a directory, expected a JSON file", path=shown, source=source
        ) from None
    except UnicodeDecodeError as err:
        raise ResultsError(f"not UTF-8 text ({err.reason})", path=shown, source=source) from err
    except OSError as err:
        raise ResultsError(
            f"cannot read: {err.strerror or err}", path=shown, source=source
        ) from err
    if not text.strip():
        raise ResultsError("is empty", path=shown, source=source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultsError(
            f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}",
            path=shown,
            source=source,
        ) from err


def available(names: list[str], limit: int = 8) -> str:
    """A short list of what a results file holds, for a NO DATA reason."""
    if not names:
        return "the results hold nothing"
    shown = ", ".join(repr(name) for name in sorted(names)[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"available: {shown}{more}"
