"""``certstore flags``: the effective settings and where each value came from."""

from __future__ import annotations

import json
import time

import click

from certstore import config
from certstore.cli._types import FiniteFloatRange


def _table(rows: list[config.Resolved]) -> str:
    width = max(len(r.variable) for r in rows)
    lines = [f"{'setting'.ljust(width)}  {'value':<36}  source"]
    for row in rows:
        lines.append(f"{row.variable.ljust(width)}  {row.display:<36}  {row.source}")
    return "\n".join(lines)


@click.command("flags")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--watch",
    is_flag=True,
    help="Keep running and print a line each time the effective flags change "
    "(shows a flags-file edit taking effect in a running process).",
)
@click.option(
    "--interval",
    type=FiniteFloatRange(0.05, 60),
    default=0.2,
    show_default=True,
    help="Seconds between checks with --watch.",
)
@click.option(
    "--duration",
    type=FiniteFloatRange(0.1, 86400),
    default=60.0,
    show_default=True,
    help="Stop --watch after this many seconds.",
)
def flags_command(as_json: bool, watch: bool, interval: float, duration: float) -> None:
    """Show every setting, its effective value and its source (env, flags file, default)."""
    rows = config.describe()
    source = config.FlagSource(log_problems=False)  # --watch reports problems itself
    flags = source.current()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "settings": {
                        r.variable: {"value": r.display, "source": r.source} for r in rows
                    },
                    "phase": flags.phase,
                    "warnings": flags.warnings(),
                },
                indent=2,
            )
        )
    else:
        click.echo(_table(rows))
        click.echo(f"\nphase: {flags.phase}")
        for warning in flags.warnings():
            click.echo(f"warning: {warning}", err=True)
    if not watch:
        return
    last = flags
    click.echo(f"watching: {last.summary()}")
    deadline = time.monotonic() + duration
    problem: str | None = None
    while time.monotonic() < deadline:
        time.sleep(interval)
        current = source.current()
        if source.problem is not None:
            # Every process that had read the file keeps its last good flags meanwhile (and
            # says so in its log and /healthz); a process starting now would refuse. Say it
            # once, and keep watching for the fix.
            if source.problem != problem:
                problem = source.problem
                click.echo(f"invalid: {problem}", err=True)
            continue
        if problem is not None or current != last:
            click.echo(f"{'fixed' if problem is not None else 'changed'}: {current.summary()}")
            problem = None
            last = current


def register(group: click.Group) -> None:
    """Add ``flags`` to ``group``."""
    group.add_command(flags_command)
