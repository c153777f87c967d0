#!/usr/bin/env python3
"""Run the Locust scenarios against a throwaway service: ``python ci/loadtest.py RESULTS_DIR``.

1. starts ``certstore serve --embedded-s3`` on a free loopback port (S3 is moto, in memory);
2. waits for ``GET /healthz`` to answer 200;
3. runs Locust headless for a bounded time and user count (optionally as one master plus
   ``--workers`` worker processes), writing CSV and JSON into RESULTS_DIR;
4. saves the service's ``/metrics`` and its log next to them, then stops everything — also when
   any step fails or the script is interrupted.

Exit code: Locust's (0 clean; 1 a request failed, with ``--exit-code-on-error 1``; or the
verdict of ``--slo-spec`` when that option is passed through after ``--``); 2 when the service
or Locust could not be started (the setup failed, nothing was measured).

Files in RESULTS_DIR: ``locust_stats.csv``, ``locust_stats_history.csv``,
``locust_failures.csv``, ``locust_exceptions.csv``, ``locust.json`` (Locust's ``--json-file``),
``service_metrics.txt`` (Prometheus text after the run), ``service.log``, ``locust.log``,
``summary.json`` (what ran, where, and the exit code).

Environment: ``RESULTS_DIR``, ``LOADTEST_DURATION``, ``LOADTEST_USERS``,
``LOADTEST_SPAWN_RATE``, ``LOADTEST_WORKERS`` give defaults for the options; the service's
flags come from ``CERT_S3_DUAL_WRITE`` / ``CERT_S3_READ_PRIMARY`` / ``CERT_S3_ONLY`` (default:
phase 2, dual-write and read-primary on); ``CERTSTORE_API_TOKEN`` is generated when unset.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXIT_SETUP = 2
_EMBEDDED_LINE = re.compile(r"embedded S3 (?P<url>http://127\.0\.0\.1:\d+) bucket (?P<bucket>\S+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env_number(name: str, default: str, kind: type) -> float | int:
    """An environment default, parsed now: a bad value is a one-line setup error (exit 2)."""
    text = os.environ.get(name, default)
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        print(f"loadtest: error: {name}={text!r} is not {what}", file=sys.stderr)
        sys.exit(EXIT_SETUP)
    return value  # type: ignore[no-any-return]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ci/loadtest.py",
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- go to every Locust process (e.g. -- --slo-spec slo.toml).",
    )
    parser.add_argument(
        "results_dir",
        nargs="?",
        default=os.environ.get("RESULTS_DIR"),
        help="where CSV/JSON/logs go (env RESULTS_DIR)",
    )
    parser.add_argument(
        "--duration",
        default=os.environ.get("LOADTEST_DURATION", "20s"),
        help="Locust --run-time, e.g. 20s, 2m (env LOADTEST_DURATION)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=_env_number("LOADTEST_USERS", "10", int),
        help="peak concurrent users (env LOADTEST_USERS)",
    )
    parser.add_argument(
        "--spawn-rate",
        type=float,
        default=_env_number("LOADTEST_SPAWN_RATE", "10", float),
        help="users started per second (env LOADTEST_SPAWN_RATE)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_env_number("LOADTEST_WORKERS", "0", int),
        help="0: one local Locust process; N: a master and N workers",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["loadtests"],
        help="locustfiles or folders (default: the whole loadtests/ folder)",
    )
    parser.add_argument("--cert-count", type=int, default=50)
    parser.add_argument("--cert-size-kb", type=int, default=50)
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the service to become healthy",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    args.locust_args = extra
    if not args.results_dir:
        parser.error("give RESULTS_DIR (argument or environment)")
    if args.users < 1 or args.workers < 0 or args.spawn_rate <= 0:
        parser.error("--users must be >= 1, --workers >= 0, --spawn-rate > 0")
    if not re.fullmatch(r"\d+[smh]?", args.duration):
        parser.error(f"--duration {args.duration!r} is not like 20s, 2m or 1h")
    return args


def duration_seconds(text: str) -> float:
    """``20s`` / ``2m`` / ``1h`` / ``30`` in seconds."""
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1], 1)
    return float(text.rstrip("smh")) * unit


def certstore_command() -> list[str]:
    """The ``certstore`` console script next to this Python, or the module form."""
    script = Path(sys.executable).with_name("certstore")
    if script.exists():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from certstore.cli import main; sys.exit(main(sys.argv[1:]))",
    ]


def locust_command() -> list[str]:
    """The ``locust`` console script next to this Python, or ``python -m locust``."""
    script = Path(sys.executable).with_name("locust")
    return [str(script)] if script.exists() else [sys.executable, "-m", "locust"]


def wait_healthy(
    base: str, service: subprocess.Popen[bytes], log: Path, timeout: float
) -> tuple[str, str]:
    """Wait for /healthz 200; returns the embedded S3 URL and bucket from the service's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"the service exited with {service.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    match = _EMBEDDED_LINE.search(log.read_text("utf-8", "replace"))
                    if match:
                        return match["url"], match["bucket"]
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the service was not healthy within {timeout:g} s; see {log}")


def stop(process: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (no-op if it already exited)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def run(args: argparse.Namespace) -> int:
    results = Path(args.results_dir).resolve()
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"loadtest: error: cannot create {results}: {err.strerror or err}", file=sys.stderr)
        return EXIT_SETUP
    scratch = Path(tempfile.mkdtemp(prefix="certstore-loadtest-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.setdefault("CERT_S3_DUAL_WRITE", "true")
    env.setdefault("CERT_S3_READ_PRIMARY", "true")
    env.setdefault("CERTSTORE_API_TOKEN", secrets.token_urlsafe(24))
    env["CERTSTORE_MEDIA_ROOT"] = str(scratch / "service-media")
    env.pop("AWS_STORAGE_BUCKET_NAME", None)
    service_log = results / "service.log"
    locust_log = results / "locust.log"
    processes: list[subprocess.Popen[bytes]] = []
    service: subprocess.Popen[bytes] | None = None
    summary: dict[str, object] = {
        "format_version": 1,
        "host": base,
        "users": args.users,
        "duration": args.duration,
        "workers": args.workers,
        "scenarios": args.scenarios,
        "phase_flags": {k: env[k] for k in ("CERT_S3_DUAL_WRITE", "CERT_S3_READ_PRIMARY")},
    }
    code = EXIT_SETUP
    try:
        with service_log.open("wb") as out:
            service = subprocess.Popen(
                [*certstore_command(), "serve", "--port", str(port), "--embedded-s3"],
                cwd=scratch,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        s3_url, bucket = wait_healthy(base, service, service_log, args.startup_timeout)
        # The storage scenario drives the router directly, against the same S3.
        locust_env = {
            **env,
            "AWS_S3_ENDPOINT_URL": s3_url,
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_ACCESS_KEY_ID": "embedded",
            "AWS_SECRET_ACCESS_KEY": "embedded",
            "CERTSTORE_MEDIA_ROOT": str(scratch / "locust-media"),
        }
        files = ",".join(
            str((REPO / s) if not Path(s).is_absolute() else s) for s in args.scenarios
        )
        common = [
            "-f",
            files,
            "--cert-count",
            str(args.cert_count),
            "--cert-size-kb",
            str(args.cert_size_kb),
        ]
        main_cmd = [
            *locust_command(),
            *common,
            "--headless",
            "-u",
            str(args.users),
            "-r",
            str(args.spawn_rate),
            "-t",
            args.duration,
            "--host",
            base,
            "--csv",
            str(results / "locust"),
            "--csv-full-history",
            "--json-file",
            str(results / "locust"),
            "--exit-code-on-error",
            "1",
            "--stop-timeout",
            "5",
            "--only-summary",
            *args.locust_args,
        ]
        if args.workers:
            master_port = free_port()
            main_cmd += [
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(master_port),
                "--expect-workers",
                str(args.workers),
            ]
            for n in range(args.workers):
                with (results / f"locust-worker-{n}.log").open("wb") as out:
                    processes.append(
                        subprocess.Popen(
                            [
                                *locust_command(),
                                *common,
                                "--worker",
                                "--master-host",
                                "127.0.0.1",
                                "--master-port",
                                str(master_port),
                            ],
                            cwd=REPO,
                            env=locust_env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                        )
                    )
        limit = duration_seconds(args.duration) + 60 + args.startup_timeout
        with locust_log.open("wb") as out:
            master = subprocess.Popen(
                main_cmd, cwd=REPO, env=locust_env, stdout=out, stderr=subprocess.STDOUT
            )
            processes.insert(0, master)
            try:
                code = master.wait(limit)
            except subprocess.TimeoutExpired:
                print(f"loadtest: Locust did not finish within {limit:g} s", file=sys.stderr)
                code = EXIT_SETUP
        for worker in processes[1:]:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                stop(worker)
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
                (results / "service_metrics.txt").write_bytes(response.read())
        except (urllib.error.URLError, OSError) as err:
            print(f"loadtest: could not save /metrics: {err}", file=sys.stderr)
    except (RuntimeError, OSError) as err:
        print(f"loadtest: {err}", file=sys.stderr)
        code = EXIT_SETUP
    finally:
        for process in processes:
            stop(process)
        stop(service)
        shutil.rmtree(scratch, ignore_errors=True)
        summary["exit_code"] = code
        (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"loadtest: exit {code}; results in {results}")
    return code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("loadtest: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
