"""In-run SLO verdict: ``locust -f loadtests --slo-spec slo.toml`` judges its own run.

Like k6 thresholds, the run's exit code becomes the verdict of the spec's Locust objectives —
Locust alone only offers ``--exit-code-on-error`` (locustio/locust#2267). When the run ends
(``quitting``), Locust's in-memory statistics are serialized to the form of its ``--json``
output and judged by the *same* code as ``slo gate`` (:class:`slo.readers.LocustStats` and
:func:`slo.evaluate`): exit 0 when every Locust objective passed, 1 when one failed or had no
data, 2 when the spec is invalid (reported at start, before any load is sent). Without
``--slo-spec`` this module does nothing. Under ``--master``/``--worker`` only the master judges
(its statistics are the aggregate of every worker's).
"""

from __future__ import annotations

import logging
import sys

from locust import events
from locust.runners import WorkerRunner

from slo.errors import SloError
from slo.evaluate import evaluate
from slo.gate import EXIT_BAD_INPUT, check_writable_folder, exit_code, write_outputs
from slo.readers import LocustStats
from slo.report_terminal import render_terminal
from slo.spec import Spec, load_spec

logger = logging.getLogger(__name__)

_state: dict[str, Spec] = {}


@events.init_command_line_parser.add_listener
def _add_arguments(parser, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    group = parser.add_argument_group("SLO verdict (slo package)")
    group.add_argument(
        "--slo-spec",
        metavar="PATH",
        default=None,
        help="judge the run against the Locust objectives of this SLO spec; "
        "sets the exit code (0 pass, 1 fail or no data, 2 bad spec)",
    )
    group.add_argument(
        "--slo-out-dir",
        metavar="DIR",
        default=None,
        help="also write the verdict JSON, Markdown, JUnit XML and PNG chart here",
    )


@events.init.add_listener
def _load_spec(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    options = environment.parsed_options
    path = getattr(options, "slo_spec", None) if options is not None else None
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    try:
        spec = load_spec(path)
    except SloError as err:
        logger.error("--slo-spec: %s", err)
        sys.exit(EXIT_BAD_INPUT)
    if "locust" not in spec.sources():
        logger.error('--slo-spec: %s has no Locust objectives (source = "locust")', path)
        sys.exit(EXIT_BAD_INPUT)
    out_dir = getattr(options, "slo_out_dir", None)
    if out_dir:
        try:
            check_writable_folder(out_dir)  # now, not after the load has run
        except SloError as err:
            logger.error("--slo-out-dir: %s", err)
            sys.exit(EXIT_BAD_INPUT)
    _state["spec"] = spec
    logger.info("SLO verdict: judging this run against %s", path)


@events.quitting.add_listener
def _judge(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    spec = _state.get("spec")
    if spec is None or isinstance(environment.runner, WorkerRunner):
        return
    entries = [entry.serialize() for entry in environment.stats.entries.values()]
    stats = LocustStats(entries, path="this run")
    verdict = evaluate(spec, {"locust": stats}, sources={"locust"}, inputs={"locust": "in-run"})
    table = render_terminal(verdict)
    (logger.info if verdict.passed else logger.error)("SLO verdict\n%s", table)
    out_dir = getattr(environment.parsed_options, "slo_out_dir", None)
    if out_dir:
        try:
            write_outputs(verdict, out_dir)
        except OSError as err:  # checked at start; gone since (a full disk, a removed folder)
            logger.error("--slo-out-dir %s: %s", out_dir, err.strerror or err)
            environment.process_exit_code = EXIT_BAD_INPUT
            return
    code = exit_code(verdict)
    if code or environment.process_exit_code is None:
        environment.process_exit_code = code
