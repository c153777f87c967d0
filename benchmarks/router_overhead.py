"""What the router costs on top of doing the same work by hand.

Against a moto server on 127.0.0.1 (its own process), interleaving the two sides operation by
operation so machine noise hits both alike:

* ``save``: the router's dual-write ``save`` (durable local write, then S3 with SHA-256 metadata
  and checksum, metrics) vs a raw durable local write (temp file, fsync, rename, folder fsync)
  plus a raw boto3 ``put_object`` of the same 50 KB object;
* ``url``: the router's read-primary ``url`` vs a raw ``generate_presigned_url``.

Reports medians and the median ratio over at least 500 operations each. Target: <= 1.10x.

    python benchmarks/router_overhead.py [--ops 500] [--size-kb 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from certstore.backends import LocalBackend, S3Backend, build_client
from certstore.config import FlagSource, Settings
from certstore.metrics import default_metrics
from certstore.storage import CertificateStorage
from pytest_certstore.moto_server import FAKE_CREDENTIALS, MotoServer

TARGET = 1.10


def raw_durable_write(path: Path, data: bytes) -> None:
    """What a careful hand-written save does: temp file, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".raw-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def measure(ops: int, size_kb: int) -> dict[str, Any]:
    os.environ.update(FAKE_CREDENTIALS)
    payload = os.urandom(size_kb * 1024)
    with MotoServer() as server, tempfile.TemporaryDirectory() as scratch:
        settings = Settings.from_env({}, endpoint_url=server.url, bucket="bench-router")
        client = build_client(settings)
        client.create_bucket(Bucket="bench-router")
        metrics = default_metrics()
        s3 = S3Backend(client, "bench-router", prefix="certificates/", metrics=metrics)
        root = Path(scratch)
        storage = CertificateStorage(
            LocalBackend(root / "router"),
            s3,
            flags=FlagSource({"CERT_S3_DUAL_WRITE": "true", "CERT_S3_READ_PRIMARY": "true"}),
            metrics=metrics,
        )
        raw_root = root / "raw"
        for warm in range(20):
            storage.save(f"warm/{warm}.pdf", payload)
            raw_durable_write(raw_root / f"warm/{warm}.pdf", payload)
            client.put_object(Bucket="bench-router", Key=f"raw/warm/{warm}.pdf", Body=payload)
        router_save: list[float] = []
        raw_save: list[float] = []
        router_url: list[float] = []
        raw_url: list[float] = []
        clock = time.perf_counter

        def router_save_op(key: str) -> None:
            storage.save(key, payload)

        def raw_save_op(key: str) -> None:
            raw_durable_write(raw_root / key, payload)
            client.put_object(Bucket="bench-router", Key=f"raw/{key}", Body=payload)

        def router_url_op(key: str) -> None:
            storage.url(key)

        def raw_url_op(key: str) -> None:
            client.generate_presigned_url(
                "get_object",
                Params={"Bucket": "bench-router", "Key": f"certificates/{key}"},
                ExpiresIn=3600,
            )

        pairs = (
            (router_save_op, raw_save_op, router_save, raw_save),
            (router_url_op, raw_url_op, router_url, raw_url),
        )
        for router_op, raw_op, router_times, raw_times in pairs:
            for number in range(ops):
                key = f"2024/{number % 50}/cert-{number}.pdf"
                # alternate which side goes first, so warm caches favour neither
                order = ((router_op, router_times), (raw_op, raw_times))
                for operation, times in order if number % 2 == 0 else order[::-1]:
                    start = clock()
                    operation(key)
                    times.append(clock() - start)

    def med_ms(samples: list[float]) -> float:
        return statistics.median(samples) * 1000

    def ratio(a: list[float], b: list[float]) -> float:
        return statistics.median(x / y for x, y in zip(a, b, strict=True))

    return {
        "ops": ops,
        "size_kb": size_kb,
        "router_save_median_ms": round(med_ms(router_save), 4),
        "raw_save_median_ms": round(med_ms(raw_save), 4),
        "save_ratio": round(ratio(router_save, raw_save), 4),
        "router_url_median_ms": round(med_ms(router_url), 4),
        "raw_url_median_ms": round(med_ms(raw_url), 4),
        "url_ratio": round(ratio(router_url, raw_url), 4),
        "target_ratio": TARGET,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=500, help="operations per side (>= 500)")
    parser.add_argument("--size-kb", type=int, default=50)
    parser.add_argument("--json", dest="json_path", help="write the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.ops < 1:
        parser.error("--ops must be positive")
    figures = measure(args.ops, args.size_kb)
    print(
        f"router overhead, {figures['ops']} ops x {figures['size_kb']} KB, moto server on "
        f"127.0.0.1 ({figures['machine']})"
    )
    print(f"{'operation':<10} {'router ms':>10} {'raw ms':>10} {'ratio':>7} {'target':>7}")
    for name in ("save", "url"):
        ratio = figures[f"{name}_ratio"]
        verdict = "ok" if ratio <= TARGET else "OVER"
        print(
            f"{name:<10} {figures[f'router_{name}_median_ms']:>10.3f} "
            f"{figures[f'raw_{name}_median_ms']:>10.3f} {ratio:>7.3f} {TARGET:>7.2f} {verdict}"
        )
    print("ratio = median over operations of router time / raw time (interleaved pairs)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
