"""Download redirect path of the web service vs the floor of its own stack.

Same machine, same uvicorn settings, same Locust load (fixed users, each at a constant task
rate), against three targets:

- ``service``: ``certstore serve`` in phase 2 (read-primary) with its exists cache at the
  configured TTL (``CERTSTORE_WEB_EXISTS_TTL``, default 60 s; ``--exists-ttl`` to try
  another): a download is one presign and a 302, plus one S3 HeadObject when the key was not
  confirmed within the TTL;
- ``service_no_cache``: the same service with ``--exists-ttl 0``: every download HEADs;
- ``floor``: a bare ASGI app that answers every request with a constant 302, the floor for
  this stack.

Rounds alternate service/service_no_cache/floor so machine noise hits all three. Only the
first leg (``GET /certificates/[key]``, the service's answer) is measured (``--skip-s3-leg``):
the S3 download itself is the same for all. Both services share one S3 endpoint and media
root; each service's ``/metrics`` before and after the rounds gives the fraction of measured
downloads that made a HeadObject (``cert.s3.read`` over ``cert.s3.url``).

Percentiles are computed (type 7) from every response time Locust measured, unrounded
(``loadtests/response_times.py``, ``--response-times-csv``): Locust's own statistics round
times under 100 ms to whole milliseconds, which at a floor of ~2 ms turns noise into 50 %
steps. Locust's rounded p95 is reported next to them.

Each side first gets an unmeasured warm-up run (``--warmup``, default 10 s; the seeding
happens there), so the rounds show the steady state; ``--warmup 0`` measures from cold.

The service, its S3 endpoint (a moto server in its own process) and Locust all share this
machine, so the figures include their competition for its cores.

Target: the service's p95 at most 1.5x the floor's p95 at the same request rate.

    python benchmarks/service_throughput.py [--users 10] [--user-rps 5] [--duration 20]
        [--rounds 3] [--warmup 10] [--exists-ttl SECONDS] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from certstore.percentiles import percentile  # the project's one method (type 7)

REPO = Path(__file__).resolve().parent.parent
TARGET_P95_RATIO = 1.5
BUCKET = "bench-service"
ASGI_FLOOR_LOCATION = "http://127.0.0.1:9/floor/certificate.pdf?X-Amz-Signature=floor"
#: The measured targets, in round order.
SIDES = ("service", "service_no_cache", "floor")


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: every HTTP request gets the same 302, nothing else happens."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [
                (b"location", ASGI_FLOOR_LOCATION.encode()),
                (b"cache-control", b"no-store"),
                (b"content-length", b"0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def serve_floor(port: int) -> None:
    """Run :func:`floor_app` with the uvicorn settings ``certstore serve --no-access-log``
    uses (one process, no access log, no server header)."""
    import uvicorn

    uvicorn.run(
        floor_app,
        host="127.0.0.1",
        port=port,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        log_level="warning",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until ``url`` answers anything over HTTP (redirects are not followed)."""
    parsed = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=2)
        try:
            connection.request("GET", parsed.path or "/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def script(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise RuntimeError(f"{name} is not installed next to {sys.executable}")
    return str(path)


def locust_round(
    host: str,
    out: Path,
    args: argparse.Namespace,
    *,
    seed: bool,
    env: dict[str, str],
    duration: int,
) -> dict[str, float]:
    """One fixed-load Locust run of ``duration`` seconds; returns the first leg's rate and
    percentiles."""
    prefix = out / "locust"
    command = [
        script("locust"),
        "-f",
        f"{REPO / 'loadtests' / 'downloads.py'},{REPO / 'loadtests' / 'response_times.py'}",
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.users * 10),
        "-t",
        f"{duration}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--user-rps",
        str(args.user_rps),
        "--cert-count",
        str(args.cert_count),
        "--cert-size-kb",
        str(args.cert_size_kb),
        "--skip-s3-leg",
        "--stop-timeout",
        "5",
        "--only-summary",
        "--response-times-csv",
        str(out / "response_times.csv"),
    ]
    if not seed:
        command.append("--skip-seed")
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, env=env, cwd=out, capture_output=True, timeout=duration + 120)
    (out / "locust.log").write_bytes(result.stdout + result.stderr)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(handle)}
    row = rows.get(("GET", "/certificates/[key]"))
    if row is None or int(row["Request Count"]) == 0:
        tail = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
        raise RuntimeError(f"no downloads were measured (Locust exit {result.returncode}):\n{tail}")
    times = read_times(out / "response_times.csv", "GET", "/certificates/[key]")
    if not times:
        raise RuntimeError(f"no response times were recorded in {out / 'response_times.csv'}")
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99),
        "locust_p95_ms": float(row["95%"]),
    }


def read_times(path: Path, request_type: str, name: str) -> list[float]:
    """Successful response times (ms, unrounded) of one request name, from the CSV that
    ``loadtests/response_times.py`` writes (read here without importing Locust)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return [
            float(r["response_time_ms"])
            for r in rows
            if r["type"] == request_type and r["name"] == name and r["failed"] == "0"
        ]


def metric_total(exposition: str, name: str) -> float:
    """The sum of every sample of the Prometheus counter ``name`` (all label sets)."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def s3_counts(port: int) -> tuple[float, float]:
    """(HeadObjects, presigned redirects) the service at ``port`` has made so far."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return metric_total(text, "cert_s3_read_total"), metric_total(text, "cert_s3_url_total")


def head_fraction(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """HeadObjects per redirect between two :func:`s3_counts` snapshots."""
    urls = after[1] - before[1]
    return (after[0] - before[0]) / urls if urls else None


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import boto3

    token = secrets.token_urlsafe(16)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CERT_S3_", "CERTSTORE_", "AWS_S3_", "AWS_STORAGE_"))
    }
    moto_port, floor_port = free_port(), free_port()
    ports = {"service": free_port(), "service_no_cache": free_port(), "floor": floor_port}
    moto_url = f"http://127.0.0.1:{moto_port}"
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_S3_ENDPOINT_URL": moto_url,
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "CERT_S3_DUAL_WRITE": "true",
            "CERT_S3_READ_PRIMARY": "true",
            "CERTSTORE_API_TOKEN": token,
            "CERTSTORE_MEDIA_ROOT": str(work / "media"),
        }
    )
    processes: list[subprocess.Popen[bytes]] = []
    logs = work / "logs"
    logs.mkdir()
    try:

        def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
            with (logs / f"{name}.log").open("wb") as out:
                process = subprocess.Popen(
                    command, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT
                )
            processes.append(process)
            return process

        moto = start("moto", [script("moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)])
        wait_for(f"{moto_url}/moto-api/", moto)
        boto3.client(
            "s3",
            endpoint_url=moto_url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=BUCKET)
        serve = [script("certstore"), "serve", "--no-access-log"]
        cached = [*serve, "--port", str(ports["service"])]
        if args.exists_ttl is not None:
            cached += ["--exists-ttl", str(args.exists_ttl)]
        commands = {
            "service": cached,
            "service_no_cache": [
                *serve,
                "--port",
                str(ports["service_no_cache"]),
                "--exists-ttl",
                "0",
            ],
            "floor": [sys.executable, __file__, "--serve-floor", str(floor_port)],
        }
        for side in SIDES:
            wait_for(f"http://127.0.0.1:{ports[side]}/healthz", start(side, commands[side]))
        rounds: dict[str, Any] = {side: [] for side in SIDES}
        # The warm-up (seeding included) is run and thrown away: the measured rounds show
        # the steady state, as pytest-benchmark's warm-up or a k6 ramp stage would.
        for side in SIDES if args.warmup else ():
            locust_round(
                f"http://127.0.0.1:{ports[side]}",
                work / f"{side}-warmup",
                args,
                seed=side == "service",
                env=env,
                duration=args.warmup,
            )
        cached_sides = ("service", "service_no_cache")
        before = {side: s3_counts(ports[side]) for side in cached_sides}
        for n in range(args.rounds):
            for side in SIDES:
                rounds[side].append(
                    locust_round(
                        f"http://127.0.0.1:{ports[side]}",
                        work / f"{side}-{n}",
                        args,
                        seed=not args.warmup and n == 0 and side == "service",
                        env=env,
                        duration=args.duration,
                    )
                )
        rounds["head_fraction"] = {
            side: head_fraction(before[side], s3_counts(ports[side])) for side in cached_sides
        }
    finally:
        for process in reversed(processes):
            stop(process)
    return rounds


def summarise(rounds: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "format_version": 1,
        "benchmark": "service_throughput",
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "shared_machine": "service, S3 endpoint (moto server) and Locust on one machine",
        "users": args.users,
        "user_rps": args.user_rps,
        "offered_rps": args.users * args.user_rps,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "cert_size_kb": args.cert_size_kb,
        "target_p95_ratio": TARGET_P95_RATIO,
        "service_exists_ttl_s": configured_ttl(args),
        "service_no_cache_exists_ttl_s": 0.0,
    }
    for side in SIDES:
        runs = rounds[side]
        for field in ("rps", "p50_ms", "p95_ms", "p99_ms", "locust_p95_ms"):
            result[f"{side}_{field}"] = statistics.median(r[field] for r in runs)
        result[f"{side}_requests"] = sum(int(r["requests"]) for r in runs)
        result[f"{side}_round_p95_ms"] = ",".join(f"{r['p95_ms']:g}" for r in runs)
        result[f"{side}_failures"] = sum(int(r["failures"]) for r in runs)
    for side, fraction in rounds["head_fraction"].items():
        result[f"{side}_head_fraction"] = fraction
    # Percentiles come from the unrounded response times, so no floor is 0 with real data.
    floor_p50, floor_p95 = result["floor_p50_ms"], result["floor_p95_ms"]
    if floor_p50 <= 0 or floor_p95 <= 0:
        raise ValueError("the floor's percentiles must be above 0 ms")
    for side, suffix in (("service", ""), ("service_no_cache", "_no_cache")):
        result[f"p95_ratio{suffix}"] = result[f"{side}_p95_ms"] / floor_p95
        result[f"p50_ratio{suffix}"] = result[f"{side}_p50_ms"] / floor_p50
        result[f"rps_ratio{suffix}"] = result[f"{side}_rps"] / result["floor_rps"]
    result["meets_target"] = (
        result["p95_ratio"] <= TARGET_P95_RATIO and result["service_failures"] == 0
    )
    result["meets_target_no_cache"] = (
        result["p95_ratio_no_cache"] <= TARGET_P95_RATIO
        and result["service_no_cache_failures"] == 0
    )
    return result


def configured_ttl(args: argparse.Namespace) -> float:
    """The exists-cache TTL the cached service runs with (the setting's default unless given)."""
    if args.exists_ttl is not None:
        return float(args.exists_ttl)
    from certstore.config import Settings

    return Settings().web_exists_ttl


def print_table(result: dict[str, Any]) -> None:
    print(f"service_throughput: {result['machine']}")
    print(
        f"  {result['shared_machine']}; {result['users']} users x {result['user_rps']:g} "
        f"tasks/s = {result['offered_rps']:g} req/s offered, {result['duration_s']} s x "
        f"{result['rounds']} round(s) per side (median of rounds)"
    )
    print(
        f"  {'target':<34} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'fails':>6}"
        f" {'Locust p95':>11}"
    )
    for side, label in (
        ("service", f"service, exists TTL {result['service_exists_ttl_s']:g} s"),
        ("service_no_cache", "service, TTL 0: HEAD every time"),
        ("floor", "floor: constant 302 (bare ASGI)"),
    ):
        print(
            f"  {label:<34} {result[f'{side}_rps']:>8.1f} {result[f'{side}_p50_ms']:>8.2f} "
            f"{result[f'{side}_p95_ms']:>8.2f} {result[f'{side}_p99_ms']:>8.2f} "
            f"{result[f'{side}_failures']:>6} {result[f'{side}_locust_p95_ms']:>11.0f}"
        )
    for suffix, label in (("", "cache on"), ("_no_cache", "cache off")):
        verdict = "meets" if result[f"meets_target{suffix}"] else "MISSES"
        print(
            f"  p95 ratio service/floor, {label}: {result[f'p95_ratio{suffix}']:.2f}x ({verdict} "
            f"the target <= {TARGET_P95_RATIO}x); req/s ratio {result[f'rps_ratio{suffix}']:.2f}"
        )
    print(
        "  percentiles from every response time as Locust measured it (--response-times-csv); "
        "'Locust p95' is its own statistic, rounded to whole ms"
    )
    for side in ("service", "service_no_cache"):
        fraction = result[f"{side}_head_fraction"]
        shown = "n/a" if fraction is None else f"{fraction:.1%}"
        print(f"  {side}: downloads that made an S3 HeadObject: {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument(
        "--user-rps",
        type=float,
        default=5.0,
        help="downloads per second per user (constant throughput)",
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--warmup",
        type=int,
        default=10,
        metavar="SECONDS",
        help="an unmeasured run per side before the rounds (0: none, the first round is cold)",
    )
    parser.add_argument("--cert-count", type=int, default=50)
    parser.add_argument("--cert-size-kb", type=int, default=50)
    parser.add_argument(
        "--exists-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exists-cache TTL of the cached service [default: CERTSTORE_WEB_EXISTS_TTL's, 60]",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as flat JSON")
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    if (
        min(args.users, args.duration, args.rounds, args.cert_count, args.cert_size_kb) < 1
        or args.user_rps <= 0
    ):
        parser.error("every count, the duration and --user-rps must be positive")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more seconds")
    if args.exists_ttl is not None and not 0 < args.exists_ttl <= 300:
        parser.error(
            "--exists-ttl must be above 0 (the uncached service is measured anyway) and at most 300"
        )
    with tempfile.TemporaryDirectory(prefix="bench-service-") as scratch:
        try:
            rounds = measure(args, Path(scratch))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
            print(f"service_throughput: {err}", file=sys.stderr)
            return 1
    result = summarise(rounds, args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
