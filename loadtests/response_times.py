"""Every response time at full resolution: ``--response-times-csv PATH``.

Locust keeps response times under 100 ms rounded to whole milliseconds, so two sub-millisecond
services both report p95 "1" and a 2.4 ms and a 3.4 ms p95 read 2 and 3 — a 50 % difference
that is really rounding. This module records each request's response time as Locust measured
it (a float in milliseconds, before that rounding) and writes ``type,name,response_time_ms,
failed`` rows when the run stops. Only this process's own requests are seen: in a distributed
run each worker writes its own file (``PATH`` with ``.<worker id>`` before the suffix) and the
master writes none. Without the option it records nothing.

Memory is bounded: at most :data:`MAX_SAMPLES` rows are kept (the first ones); the file then
ends with a comment line saying how many were dropped.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

logger = logging.getLogger(__name__)

#: Rows kept per process (about 100 bytes each in memory).
MAX_SAMPLES = 2_000_000

_state: dict[str, Any] = {"path": None, "rows": [], "dropped": 0}


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--response-times-csv",
        metavar="PATH",
        default=None,
        help="write every response time (ms, unrounded) of this process to a CSV at the end",
    )


def output_path(path: str, runner: Any) -> Path:
    """Where this process writes: ``path`` itself, or ``path`` with the worker's id."""
    target = Path(path)
    if isinstance(runner, WorkerRunner):
        worker = str(runner.client_id).replace("/", "_")
        return target.with_name(f"{target.stem}.{worker}{target.suffix}")
    return target


@events.init.add_listener
def _arm(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    path = getattr(options, "response_times_csv", None) if options is not None else None
    if not path or isinstance(environment.runner, MasterRunner):
        return
    target = output_path(path, environment.runner)
    if not target.parent.is_dir():
        raise SystemExit(f"--response-times-csv: folder {str(target.parent)!r} does not exist")
    _state.update(path=target, rows=[], dropped=0)


@events.request.add_listener
def _record(
    request_type: str, name: str, response_time: float, exception: object = None, **_: Any
) -> None:
    if _state["path"] is None:
        return
    rows = _state["rows"]
    if len(rows) >= MAX_SAMPLES:
        _state["dropped"] += 1
        return
    rows.append((request_type, name, response_time, exception is not None))


@events.test_stop.add_listener
def _write(environment: Any, **_kwargs: Any) -> None:
    path = _state["path"]
    if path is None:
        return
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("type", "name", "response_time_ms", "failed"))
        writer.writerows(
            (kind, name, f"{time:.4f}", int(failed)) for kind, name, time, failed in _state["rows"]
        )
        if _state["dropped"]:
            handle.write(f"# {_state['dropped']} more rows dropped past {MAX_SAMPLES}\n")
    logger.info("wrote %d response times to %s", len(_state["rows"]), path)
    _state["rows"] = []
    _state["dropped"] = 0
