"""A PNG chart of measured latency percentiles against their targets, one panel per scenario.

matplotlib is imported lazily and forced onto the non-interactive Agg backend, so the gate runs
on a CI machine without a display and ``import slo`` stays cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from slo.evaluate import PASS, ObjectiveResult, Verdict
from slo.spec import LATENCY_FIELDS

_COLOURS = {"PASS": "#2e7d32", "FAIL": "#c62828", "NO DATA": "#9e9e9e"}


def latency_panels(verdict: Verdict) -> OrderedDict[str, list[ObjectiveResult]]:
    """Scenario -> its latency results, in spec order (what the chart draws)."""
    panels: OrderedDict[str, list[ObjectiveResult]] = OrderedDict()
    for result in verdict.results:
        if result.objective.kind in LATENCY_FIELDS:
            panels.setdefault(result.objective.scenario, []).append(result)
    return panels


def scenario_status(verdict: Verdict, scenario: str) -> str:
    """A panel's title: FAIL if any objective of the scenario failed (its error rate too, which
    the chart does not draw), else NO DATA if any had none, else PASS."""
    statuses = {r.status for r in verdict.results if r.objective.scenario == scenario}
    if "FAIL" in statuses:
        return "FAIL"
    if statuses - {PASS}:
        return "NO DATA"
    return "PASS"


def write_png(verdict: Verdict, path: str | Path) -> Path:
    """Draw the chart into ``path``: bars are measured values, black ticks are targets."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    panels = latency_panels(verdict)
    count = max(1, len(panels))
    columns = min(count, 3)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    try:
        flat = [axis for row in axes for axis in row]
        if not panels:
            flat[0].text(0.5, 0.5, "no latency objectives", ha="center", va="center")
            flat[0].set_axis_off()
        for axis, (scenario, results) in zip(flat, panels.items(), strict=False):
            labels = [result.objective.kind.removesuffix("_ms") for result in results]
            measured = [result.measured or 0.0 for result in results]
            colours = [_COLOURS[result.status] for result in results]
            positions = range(len(results))
            axis.bar(positions, measured, color=colours, width=0.6, label="measured")
            axis.scatter(
                positions,
                [result.objective.target for result in results],
                marker="_",
                s=900,
                color="black",
                linewidths=2,
                label="target",
                zorder=3,
            )
            for position, result in zip(positions, results, strict=True):
                text = "no data" if result.measured is None else f"{result.measured:.0f}"
                axis.annotate(
                    text, (position, result.measured or 0.0), ha="center", va="bottom", fontsize=8
                )
            axis.set_xticks(list(positions), labels)
            axis.set_ylabel("ms")
            axis.set_title(f"{scenario} ({scenario_status(verdict, scenario)})", fontsize=10)
            axis.set_ylim(bottom=0)
            # At least three slots wide, so one bar is as wide as one of three.
            axis.set_xlim(-0.75, max(len(results), 3) - 0.25)
        for axis in flat[len(panels) or 1 :]:
            axis.set_axis_off()
        figure.suptitle(f"SLO gate: {verdict.status} — measured (bars) vs target (—)")
        figure.tight_layout()
        target = Path(path)
        figure.savefig(target, format="png", dpi=100)
    finally:
        plt.close(figure)
    return target
