"""The ``slo`` command: ``slo gate`` (judge results) and ``slo check`` (validate a spec).

Exit codes: 0 every objective passed, 1 an objective failed or had no data, 2 bad input (a spec,
results file or baseline that could not be used, an output that cannot be written, or a usage
error). A user error prints one
line naming the file, objective or field; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from slo.errors import OutputError, SloError
from slo.gate import (
    EXIT_BAD_INPUT,
    EXIT_PASS,
    GateInputs,
    check_writable_folder,
    exit_code,
    run_gate,
    write_outputs,
)
from slo.report_markdown import append_step_summary
from slo.report_terminal import render_terminal
from slo.spec import DEFAULT_SPEC_PATH, load_spec


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``slo`` (public so docs and tests can read its help)."""
    parser = _Parser(prog="slo", description="SLO spec and release gate for certstore.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gate = commands.add_parser(
        "gate",
        help="judge results against the spec (exit 0 pass, 1 fail or no data, 2 bad input)",
        description="Evaluate every objective of the spec: PASS, FAIL or NO DATA (a failure).",
    )
    gate.add_argument("--spec", default=DEFAULT_SPEC_PATH, help="SLO spec (default: slo.toml)")
    gate.add_argument(
        "--locust",
        metavar="PATH",
        help="Locust results: --csv prefix, PREFIX_stats.csv, --json(-file) output, or a folder",
    )
    gate.add_argument("--pytest", metavar="PATH", help="the plugin's --slo-report JSON")
    gate.add_argument("--coverage", metavar="PATH", help="`coverage json` report")
    gate.add_argument("--benchmark", metavar="PATH", help="pytest-benchmark --benchmark-json")
    gate.add_argument(
        "--baseline",
        metavar="PATH",
        help="previous run's slo-verdict.json: fail latency regressions beyond tolerance",
    )
    gate.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write slo-verdict.json, slo-summary.md, slo-junit.xml and slo-chart.png here",
    )
    gate.add_argument("--no-png", action="store_true", help="skip the PNG chart")

    check = commands.add_parser("check", help="validate a spec and list its objectives")
    check.add_argument("spec", nargs="?", default=DEFAULT_SPEC_PATH)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slo`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    try:
        if args.command == "check":
            return _check(args.spec)
        return _gate(args)
    except SloError as err:
        print(f"slo: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _check(path: str) -> int:
    spec = load_spec(path)
    objectives = spec.objectives()
    print(f"{path}: valid, {len(objectives)} objectives")
    for objective in objectives:
        print(f"  {objective.id}: {objective.selector} {objective.comparison} {objective.target:g}")
    return EXIT_PASS


def _gate(args: argparse.Namespace) -> int:
    inputs = GateInputs(
        spec=args.spec,
        locust=args.locust,
        pytest=args.pytest,
        coverage=args.coverage,
        benchmark=args.benchmark,
        baseline=args.baseline,
    )
    if args.out_dir:
        check_writable_folder(args.out_dir)
    verdict = run_gate(inputs)
    terminal = _Terminal()
    terminal.say(render_terminal(verdict), end="")
    written: dict[str, Path] = {}
    try:
        if args.out_dir:
            written = write_outputs(verdict, args.out_dir, png=not args.no_png)
        summary = append_step_summary(verdict)
    except OSError as err:
        raise OutputError(err.strerror or str(err), path=str(err.filename or args.out_dir)) from err
    for kind, path in written.items():
        terminal.say(f"slo: wrote {kind}: {path}")
    if summary is not None:
        terminal.say(f"slo: appended the summary to {summary}")
    return exit_code(verdict)


class _Terminal:
    """Standard output that a reader closing it early (``slo gate ... | head``) does not turn
    into a failure: the reports are still written and the exit code is still the verdict's.
    (It once exited 2 blaming ``--out-dir`` for the broken pipe.)"""

    def __init__(self) -> None:
        self.gone = False

    def say(self, text: str, *, end: str = "\n") -> None:
        if self.gone:
            return
        try:
            print(text, end=end, flush=True)
        except BrokenPipeError:
            self.gone = True
            # what Python's docs advise: later writes, and the flush at exit, go nowhere
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
