"""Where a rehearsal runs: an S3 endpoint, a bucket and prefix, a scratch media root, catalog
and flags file -- set up before the first phase and torn down after the last.

Embedded (the default): a moto server in a child process on 127.0.0.1 (a child process, not a
thread, so the server does not share this process's GIL and distort the latencies measured
here), a fresh bucket, every scratch file in a temporary folder. The client settings an operator
tunes (``AWS_S3_MAX_ATTEMPTS``, timeouts, checksum mode, URL expiry) are taken from the
environment in both modes: they are part of what is rehearsed.

Real (``--real-s3 --bucket B``): the configured endpoint and credentials (the usual
``AWS_*`` settings), an existing bucket, and a unique prefix
``<AWS_S3_KEY_PREFIX>rehearsal-<UTC time>-<random>/`` so nothing outside it is touched. Every
object under that prefix is deleted at the end, and the listing is checked to be empty.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certstore.backends.s3 import S3Backend, build_client
from certstore.config import Flags, FlagSource, Settings
from certstore.errors import CertstoreError, ConfigError, InvalidKeyError
from certstore.keys import normalize_prefix

logger = logging.getLogger(__name__)

EMBEDDED_BUCKET = "certstore-rehearsal"
_EMBEDDED_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


class RehearsalError(CertstoreError):
    """The rehearsal could not be set up (no endpoint, no bucket, bad options)."""


@dataclass
class Environment:
    """Everything a rehearsal's phases share."""

    mode: str
    settings: Settings
    bucket: str
    prefix: str
    workdir: Path
    media_root: Path
    catalog_url: str
    flags_file: Path
    endpoint: str
    server: Any = None
    keep: bool = False
    #: The prefix production uses (in real mode the rehearsal's prefix is a folder under it).
    base_prefix: str = "certificates/"
    cleanup_report: dict[str, Any] = field(default_factory=dict)

    @property
    def flag_source(self) -> FlagSource:
        """Flags from the rehearsal's own flags file only (never the process environment)."""
        return FlagSource({"CERTSTORE_FLAGS_FILE": str(self.flags_file)})

    def set_flags(self, flags: Flags) -> None:
        """Rewrite the flags file, the way an operator flips a phase (no restart)."""
        data = {
            "CERT_S3_DUAL_WRITE": flags.dual_write,
            "CERT_S3_READ_PRIMARY": flags.read_primary,
            "CERT_S3_BACKFILL_ENABLED": flags.backfill_enabled,
            "CERT_S3_ONLY": flags.s3_only,
        }
        tmp = self.flags_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.flags_file)

    def client(self) -> Any:
        """A new boto3 client on the rehearsal's endpoint (the caller may attach faults)."""
        return build_client(self.settings)

    def describe(self) -> dict[str, Any]:
        """For the report (no credentials)."""
        return {
            "mode": self.mode,
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.settings.region,
            "workdir": str(self.workdir) if self.keep else "(temporary, removed)",
        }

    def close(self) -> None:
        """Delete what the rehearsal made: S3 objects (real mode), server, scratch files."""
        try:
            if self.mode == "real":
                self.cleanup_report = _delete_prefix(self.settings, self.bucket, self.prefix)
        finally:
            if self.server is not None:
                self.server.stop()
                self.server = None
            if not self.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _delete_prefix(settings: Settings, bucket: str, prefix: str) -> dict[str, Any]:
    backend = S3Backend(build_client(settings), bucket, prefix=prefix)
    deleted = 0
    errors: list[str] = []
    for item in list(backend.iter_objects()):
        try:
            backend.delete(item.key)
            deleted += 1
        except CertstoreError as err:
            errors.append(str(err))
    remaining = sum(1 for _ in backend.iter_objects())
    report = {"deleted": deleted, "remaining": remaining, "errors": errors[:10]}
    logger.info("rehearsal cleanup of s3://%s/%s: %s", bucket, prefix, report)
    return report


def _scratch(keep: bool) -> tuple[Path, Path, str, Path]:
    workdir = Path(tempfile.mkdtemp(prefix="certstore-rehearsal-"))
    media = workdir / "media"
    media.mkdir()
    catalog_url = f"sqlite:///{workdir / 'catalog.sqlite3'}"
    return workdir, media, catalog_url, workdir / "flags.json"


def open_environment(
    *,
    real_s3: bool = False,
    bucket: str | None = None,
    prefix: str | None = None,
    keep: bool = False,
    base: Settings | None = None,
) -> Environment:
    """Set up an :class:`Environment` (call :meth:`Environment.close` when done)."""
    base = base or Settings.from_env()
    key_prefix = base.key_prefix
    if prefix is not None:
        # the same rules as AWS_S3_KEY_PREFIX ('/abs' is 'abs/'): every part of the run (and
        # its clean-up) must agree on one form of every key
        try:
            key_prefix = normalize_prefix(prefix)
        except InvalidKeyError as err:
            raise ConfigError(
                f"--prefix {prefix!r} is not a valid key prefix: {err}",
                variable="--prefix",
                value=prefix,
            ) from err
    base_prefix = key_prefix
    if real_s3:
        name = bucket or base.bucket
        if not name:
            raise ConfigError(
                "--real-s3 needs --bucket (or AWS_STORAGE_BUCKET_NAME)", variable="--bucket"
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        key_prefix = f"{key_prefix}rehearsal-{stamp}-{secrets.token_hex(3)}/"
    elif bucket is not None:
        raise ConfigError(
            "--bucket is only used with --real-s3 (the embedded endpoint makes its own bucket)",
            variable="--bucket",
            value=bucket,
        )
    workdir, media, catalog_url, flags_file = _scratch(keep)
    server = None
    try:
        if real_s3:
            settings = Settings.from_env(
                base.env,
                bucket=name,
                key_prefix=key_prefix,
                media_root=str(media),
                catalog_url=catalog_url,
            )
            endpoint = settings.endpoint_url or f"AWS S3 ({settings.region})"
            S3Backend(build_client(settings), name, prefix=settings.key_prefix).check_bucket()
            mode = "real"
        else:
            server, url = _start_server()
            name = EMBEDDED_BUCKET
            settings = Settings.from_env(
                {},
                endpoint_url=url,
                bucket=name,
                key_prefix=key_prefix,
                media_root=str(media),
                catalog_url=catalog_url,
                region=base.region,
                max_attempts=base.max_attempts,
                connect_timeout=base.connect_timeout,
                read_timeout=base.read_timeout,
                checksum_mode=base.checksum_mode,
                url_expiry=base.url_expiry,
                **_EMBEDDED_CREDENTIALS,
            )
            build_client(settings).create_bucket(Bucket=name)
            endpoint = f"{url} (embedded moto server)"
            mode = "embedded"
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    env = Environment(
        mode,
        settings,
        name,
        settings.key_prefix,
        workdir,
        media,
        catalog_url,
        flags_file,
        endpoint,
        server,
        keep,
        base_prefix,
    )
    env.set_flags(Flags())
    return env


def _start_server() -> tuple[Any, str]:
    from certstore._moto_process import MotoProcess, MotoProcessError

    server = MotoProcess()
    try:
        url = server.start()
    except MotoProcessError as err:
        raise RehearsalError(
            f"the embedded S3 endpoint did not start: {err} (or use --real-s3 --bucket B)"
        ) from err
    return server, url
