"""``certstore flags``: the effective settings and where each value came from."""

from __future__ import annotations

import json
import time

import click

from certstore import config
from certstore.errors import ConfigError


def _table(rows: list[config.Resolved]) -> str:
    width = max(len(r.variable) for r in rows)
    lines = [f"{'setting'.ljust(width)}  {'value':<36}  source"]
    for row in rows:
        lines.append(f"{row.variable.ljust(width)}  {row.display:<36}  {row.source}")
    return "\n".join(lines)


def _flags_line(flags: config.Flags) -> str:
    return (
        f"dual_write={str(flags.dual_write).lower()} read_primary={str(flags.read_primary).lower()}"
        f" backfill_enabled={str(flags.backfill_enabled).lower()}"
        f" s3_only={str(flags.s3_only).lower()} phase={flags.phase!r}"
    )


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
    type=click.FloatRange(0.05, 60),
    default=0.2,
    show_default=True,
    help="Seconds between checks with --watch.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0.1, 86400),
    default=60.0,
    show_default=True,
    help="Stop --watch after this many seconds.",
)
def flags_command(as_json: bool, watch: bool, interval: float, duration: float) -> None:
    """Show every setting, its effective value and its source (env, flags file, default)."""
    rows = config.describe()
    flags = config.FlagSource().current()
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
    source = config.FlagSource()
    last = flags
    click.echo(f"watching: {_flags_line(last)}")
    deadline = time.monotonic() + duration
    problem: str | None = None
    while time.monotonic() < deadline:
        time.sleep(interval)
        try:
            current = source.current()
        except ConfigError as err:
            # Every process reading the file now fails its operations with this error: say
            # so once, and keep watching for the fix.
            if str(err) != problem:
                problem = str(err)
                click.echo(f"invalid: {problem}", err=True)
            continue
        if problem is not None or current != last:
            click.echo(f"{'fixed' if problem is not None else 'changed'}: {_flags_line(current)}")
            problem = None
            last = current


def register(group: click.Group) -> None:
    """Add ``flags`` to ``group``."""
    group.add_command(flags_command)
