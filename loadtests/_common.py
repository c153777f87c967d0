"""Shared pieces of the certstore Locust scenarios: options, test data, names, HTTP base User.

Not a scenario itself (the leading underscore keeps ``locust -f loadtests`` from loading it as
a locustfile); every scenario imports it, so its options exist whichever files are loaded.

Test data: ``--cert-count`` certificates of ``--cert-size-kb`` KiB are uploaded through the
service's ``PUT`` once, when Locust initialises, before the run starts (on the master only
when distributed; workers get the options from the master and derive the same keys). The keys are
deterministic (:func:`seed_key`), so no process needs to tell another which keys exist.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import random
import socket
import sys
import time
from typing import Any
from urllib.parse import quote

import gevent
import gevent.pool
import requests
from locust import FastHttpUser, events
from locust.runners import WorkerRunner
from locust.user.wait_time import constant_throughput

logger = logging.getLogger("loadtests")

#: Stable names under which requests are reported (Locust shows "Type Name").
NAME_DOWNLOAD = "/certificates/[key]"  # GET: the service's answer (302 or a local stream)
NAME_PRESIGNED = "s3 presigned"  # GET: the redirect's second leg, straight to S3
NAME_FALLBACK = "/certificates/[key] local fallback"  # FALLBACK: served locally in read-primary
NAME_UPLOAD = "/certificates/[key]"  # PUT
NAME_URL = "/urls/[key]"  # GET
TYPE_FALLBACK = "FALLBACK"
TYPE_STORAGE = "STORAGE"

#: One identity per Locust process, so uploads from several workers never collide.
RUN_ID = f"{socket.gethostname()}-{os.getpid()}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite rate >= 0 (0: no wait), got {text!r}")
    return value


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any, **_kwargs: Any) -> None:
    """The scenarios' own options (docs/load-testing.md lists them: Locust prints ``--help``
    before it loads a locustfile, so its help cannot show them; locust issue #2917)."""
    parser.add_argument(
        "--cert-count",
        type=_positive_int,
        default=50,
        env_var="CERTSTORE_LOAD_CERT_COUNT",
        help="certificates seeded at test start for downloads and URLs",
    )
    parser.add_argument(
        "--cert-size-kb",
        type=_positive_int,
        default=50,
        env_var="CERTSTORE_LOAD_CERT_SIZE_KB",
        help="size of each seeded and uploaded certificate in KiB",
    )
    parser.add_argument(
        "--key-prefix",
        default="loadtest",
        env_var="CERTSTORE_LOAD_KEY_PREFIX",
        help="folder every load-test key lives under",
    )
    parser.add_argument(
        "--api-token",
        default="",
        env_var="CERTSTORE_API_TOKEN",
        is_secret=True,
        help="bearer token for PUT (seeding and the upload scenario)",
    )
    parser.add_argument(
        "--skip-seed",
        action="store_true",
        default=False,
        env_var="CERTSTORE_LOAD_SKIP_SEED",
        help="do not upload test data (it is already there)",
    )
    parser.add_argument(
        "--skip-s3-leg",
        action="store_true",
        default=False,
        env_var="CERTSTORE_LOAD_SKIP_S3_LEG",
        help="downloads: report the service's 302 only, do not fetch the presigned URL",
    )
    parser.add_argument(
        "--user-rps",
        type=_rate,
        default=0.0,
        env_var="CERTSTORE_LOAD_USER_RPS",
        help="task runs per second per user (constant throughput); 0: no wait",
    )


def options(environment: Any) -> Any:
    """The parsed options, with the scenarios' defaults when Locust runs as a library."""
    parsed = environment.parsed_options
    if parsed is None:
        return argparse.Namespace(
            cert_count=50,
            cert_size_kb=50,
            key_prefix="loadtest",
            api_token="",
            skip_seed=False,
            skip_s3_leg=False,
            user_rps=0.0,
        )
    return parsed


def seed_key(prefix: str, index: int) -> str:
    """The key of seeded certificate ``index``; every 10th has a UTF-8 name."""
    folder = "Curaçao" if index % 10 == 9 else "seed"
    return f"{prefix.strip('/')}/{folder}/cert-{index:05d}.pdf"


def certificate_bytes(index: int, size_kb: int) -> bytes:
    """Deterministic content for certificate ``index`` (starts like a PDF)."""
    size = size_kb * 1024
    block = hashlib.sha256(f"certificate {index}".encode()).digest()
    body = b"%PDF-1.7\n" + block * (size // len(block) + 1)
    return body[:size]


def url_path(prefix: str, key: str) -> str:
    """``/prefix/<percent-encoded key>`` (slashes kept)."""
    return f"{prefix}/{quote(key)}"


def _seed(host: str, opts: Any) -> None:
    if not opts.api_token:
        raise RuntimeError(
            "seeding needs --api-token (or CERTSTORE_API_TOKEN); "
            "pass --skip-seed if the certificates already exist"
        )
    session = requests.Session()
    headers = {"Authorization": f"Bearer {opts.api_token}", "Content-Type": "application/pdf"}

    def put(index: int) -> str | None:
        """None when stored, else what went wrong (errors are collected, not raised here)."""
        key = seed_key(opts.key_prefix, index)
        try:
            response = session.put(
                host.rstrip("/") + url_path("/certificates", key),
                data=certificate_bytes(index, opts.cert_size_kb),
                headers=headers,
                timeout=30,
            )
        except requests.RequestException as err:
            return f"seeding {key!r} failed: {err}"
        if response.status_code != 201:
            return f"seeding {key!r} failed: HTTP {response.status_code} {response.text[:200]}"
        return None

    started = time.perf_counter()
    pool = gevent.pool.Pool(8)
    errors = [e for e in pool.imap_unordered(put, range(opts.cert_count)) if e is not None]
    if errors:
        raise RuntimeError(f"{errors[0]} ({len(errors)} of {opts.cert_count} seeds failed)")
    logger.info(
        "seeded %d certificates of %d KiB in %.2f s",
        opts.cert_count,
        opts.cert_size_kb,
        time.perf_counter() - started,
    )


def refresh_loop_clock() -> None:
    """Bring gevent's cached loop time up to date after blocking work.

    libev caches "now" per loop iteration; after seconds of blocking work (imports under load,
    building a boto3 client) Locust's ``--run-time`` timer, armed right after ``init``, would be
    computed from the stale time and fire early, ending a 2 s run after a few milliseconds.
    """
    gevent.get_hub().loop.update_now()


@events.init.add_listener
def seed_certificates(environment: Any, **_kwargs: Any) -> None:
    """Upload the test data once, before the run starts (master or local runner only).

    Seeding happens at ``init`` rather than ``test_start``: Locust's ``--run-time`` clock starts
    with the test, so seeding there would eat into the measured window. A seeding failure ends
    the process with exit code 1 before any load is sent.
    """
    try:
        _seed_if_needed(environment)
    finally:
        refresh_loop_clock()


def _seed_if_needed(environment: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    if not any(getattr(cls, "needs_seed", False) for cls in environment.user_classes):
        return
    opts = options(environment)
    if opts.skip_seed:
        return
    if not environment.host:
        logger.error("seeding needs the service URL: pass --host")
        sys.exit(1)
    try:
        _seed(environment.host, opts)
    except Exception as err:  # any failure: stop loudly rather than measure 404s
        logger.error("%s", err)
        sys.exit(1)


def pacing(opts: Any) -> Any:
    """The wait-time function for ``--user-rps`` (None: no wait between tasks)."""
    return constant_throughput(opts.user_rps) if opts.user_rps > 0 else None


class CertstoreHttpUser(FastHttpUser):
    """Base of the HTTP scenarios: options, pacing and the seeded key set."""

    abstract = True
    needs_seed = False

    def on_start(self) -> None:
        self.opts = options(self.environment)
        self._pacing = pacing(self.opts)

    def wait_time(self) -> float:  # type: ignore[override]
        return self._pacing(self) if self._pacing is not None else 0.0

    def random_seed_key(self) -> str:
        """One of the seeded keys, uniformly."""
        return seed_key(self.opts.key_prefix, random.randrange(self.opts.cert_count))
