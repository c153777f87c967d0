"""The JSON verdict: the machine-readable result of a gate run, and the next run's baseline.

The document carries ``format_version`` (:data:`slo.evaluate.VERDICT_FORMAT_VERSION`); a
baseline of another version is refused rather than half-understood.
"""

from __future__ import annotations

import json
from pathlib import Path

from slo.errors import BaselineError
from slo.evaluate import VERDICT_FORMAT_VERSION, Verdict


def render_json(verdict: Verdict) -> str:
    """The verdict document as indented JSON text."""
    return json.dumps(verdict.to_dict(), indent=2, sort_keys=False) + "\n"


def write_json(verdict: Verdict, path: str | Path) -> Path:
    """Write the verdict document to ``path``."""
    target = Path(path)
    target.write_text(render_json(verdict), encoding="utf-8")
    return target


def load_baseline(path: str | Path) -> dict[str, float]:
    """Objective id -> measured value from a previous verdict document."""
    shown = str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError("no such file", path=shown) from None
    except (OSError, UnicodeDecodeError) as err:
        raise BaselineError(f"cannot read: {err}", path=shown) from err
    except json.JSONDecodeError as err:
        raise BaselineError(f"not valid JSON: {err.msg} at line {err.lineno}", path=shown) from err
    if not isinstance(document, dict):
        raise BaselineError("not a verdict document (expected a JSON object)", path=shown)
    version = document.get("format_version")
    if version != VERDICT_FORMAT_VERSION:
        raise BaselineError(
            f"format_version {version!r}, this gate reads {VERDICT_FORMAT_VERSION}", path=shown
        )
    objectives = document.get("objectives")
    if not isinstance(objectives, list):
        raise BaselineError("missing 'objectives' list", path=shown)
    baseline: dict[str, float] = {}
    for index, item in enumerate(objectives):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise BaselineError(f"objectives[{index}] has no 'id'", path=shown)
        measured = item.get("measured")
        if measured is None:
            continue
        if isinstance(measured, bool) or not isinstance(measured, int | float):
            raise BaselineError(
                f"objectives[{index}] ({item['id']}): 'measured' must be a number", path=shown
            )
        baseline[item["id"]] = float(measured)
    return baseline
