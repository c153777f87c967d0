"""``certstore serve``: run the certificate web service under uvicorn.

``--embedded-s3`` starts a throwaway S3 endpoint (moto) on loopback first and points the
service at it, so the service runs on a fresh machine with nothing else installed or running.
uvicorn handles SIGINT/SIGTERM with a graceful shutdown (in-flight requests finish); the
embedded endpoint stops after the server has.
"""

from __future__ import annotations

import ipaddress
import os
import signal
from pathlib import Path
from typing import Any

import click

from certstore.cli._types import FiniteFloatRange

_LOOPBACK_NAMES = ("localhost",)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _import_web() -> tuple[Any, Any]:
    try:
        import uvicorn

        import certstore.web as web
    except ImportError as err:
        raise click.ClickException(
            "certstore serve needs the 'web' extra (Starlette, uvicorn): "
            f"pip install 'certstore[web]' ({err})"
        ) from err
    return uvicorn, web


class _Terminated(Exception):
    """SIGTERM arrived after uvicorn's graceful shutdown re-raised it."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--embedded-s3",
    is_flag=True,
    help="Start a throwaway in-memory S3 endpoint (moto) on loopback and use it.",
)
@click.option(
    "--max-upload-bytes",
    type=click.IntRange(1),
    default=None,
    help="Largest accepted upload  [default: 10 MiB].",
)
@click.option(
    "--exists-ttl",
    type=FiniteFloatRange(0, 300),
    default=None,
    metavar="SECONDS",
    help="Skip the S3 HEAD for keys confirmed this recently; 0 turns it off  "
    "[default: CERTSTORE_WEB_EXISTS_TTL, 60].",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="uvicorn's per-request log line (query strings redacted).",
)
def serve_command(
    host: str,
    port: int,
    embedded_s3: bool,
    max_upload_bytes: int | None,
    exists_ttl: float | None,
    access_log: bool,
) -> None:
    """Serve downloads, uploads, /healthz and /metrics over HTTP.

    Configuration comes from the environment like every other command (flags, bucket, media
    root); uploads need CERTSTORE_API_TOKEN.
    """
    if embedded_s3 and not _is_loopback(host):
        raise click.UsageError(
            f"--embedded-s3 is loopback-only: its presigned URLs point at 127.0.0.1 and it has "
            f"no authentication; bind to 127.0.0.1 instead of {host!r}"
        )
    uvicorn, web = _import_web()
    from certstore._embedded_s3 import EmbeddedS3
    from certstore.config import Settings
    from certstore.storage import CertificateStorage

    embedded = None
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if embedded_s3:
            embedded = EmbeddedS3(os.environ.get("AWS_STORAGE_BUCKET_NAME") or "certstore")
            embedded.start()
            os.environ.update(embedded.environment())
        settings = Settings.from_env()
        storage = CertificateStorage.from_settings(settings)
        # the storage's own flag source reads the flags file now: from here on a bad edit
        # leaves the service on these flags (degraded), not failing every request
        flags = storage.flags()
        if not flags.s3_only:
            Path(settings.media_root).mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if max_upload_bytes is not None:
            kwargs["max_upload_bytes"] = max_upload_bytes
        if exists_ttl is not None:
            kwargs["exists_ttl"] = exists_ttl
        app = web.create_app(storage, settings, **kwargs)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=access_log,
            server_header=False,
            timeout_graceful_shutdown=10,
            log_level="info",
        )
        web.install_redaction()
        base = f"http://{host}:{port}"
        lines = [
            f"certstore: serving {base}/certificates/<key> (phase {flags.phase}, uploads "
            f"{'enabled' if settings.api_token else 'disabled: CERTSTORE_API_TOKEN not set'})",
            f"certstore: health {base}/healthz  metrics {base}/metrics",
        ]
        if embedded is not None:
            lines.append(
                f"certstore: embedded S3 {embedded.url} bucket {embedded.bucket} "
                "(in memory, gone on exit)"
            )
        server = _make_server(uvicorn, config, lines)
        signal.signal(signal.SIGTERM, _on_sigterm)
        server.run()
        if not server.started:
            raise click.ClickException(f"the server did not start on {host}:{port}")
    except _Terminated:
        click.echo("certstore: stopped (SIGTERM)", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        if embedded is not None:
            embedded.stop()


def _make_server(uvicorn: Any, config: Any, lines: list[str]) -> Any:
    """A uvicorn server that prints ``lines`` once it really listens."""

    class Server(uvicorn.Server):  # type: ignore[misc,name-defined]
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                for line in lines:
                    click.echo(line)

    return Server(config)


def register(group: click.Group) -> None:
    """Add ``serve`` to ``group``."""
    group.add_command(serve_command)
