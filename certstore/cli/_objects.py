"""``certstore put/get/url/rm/stat``: single objects through the router, so an operator can
try a flag combination by hand and see exactly what the application would do."""

from __future__ import annotations

import json
import shutil
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from certstore.storage import CertificateStorage


def _storage() -> CertificateStorage:
    # imported here: every other command (a backfill above all) starts without the router
    from certstore.storage import CertificateStorage

    return CertificateStorage.from_settings()


@click.command("put")
@click.argument("key")
@click.argument("source", type=click.File("rb"))
@click.option("--content-type", default="application/pdf", show_default=True)
def put_command(key: str, source: click.File, content_type: str) -> None:
    """Save SOURCE (a file, or - for stdin) as KEY through the router."""
    canonical = _storage().save(key, source, content_type=content_type)  # type: ignore[arg-type]
    click.echo(canonical)


@click.command("get")
@click.argument("key")
@click.option(
    "-o",
    "--output",
    type=click.File("wb"),
    default="-",
    help="Where to write the bytes (default: stdout).",
)
def get_command(key: str, output: click.File) -> None:
    """Write KEY's bytes, read the way the application reads it."""
    with _storage().open(key) as handle:
        shutil.copyfileobj(handle, output)  # type: ignore[misc]


@click.command("url")
@click.argument("key")
@click.option(
    "--expires",
    type=click.IntRange(1, 7 * 24 * 3600),
    help="Lifetime in seconds of a presigned URL.",
)
@click.option("--download-name", help="File name the browser saves it as.")
def url_command(key: str, expires: int | None, download_name: str | None) -> None:
    """Print the URL the application would hand out for KEY."""
    click.echo(_storage().url(key, expires=expires, download_name=download_name))


@click.command("rm")
@click.argument("keys", nargs=-1, required=True)
def rm_command(keys: tuple[str, ...]) -> None:
    """Delete KEYS wherever the flags say they live."""
    storage = _storage()
    for key in keys:
        storage.delete(key)
        click.echo(f"deleted {key}")


@click.command("stat")
@click.argument("key")
def stat_command(key: str) -> None:
    """Print whether KEY exists, its size and modification time, as JSON."""
    storage = _storage()
    if not storage.exists(key):
        click.echo(json.dumps({"key": key, "exists": False}))
        sys.exit(3)
    click.echo(
        json.dumps(
            {
                "key": key,
                "exists": True,
                "size": storage.size(key),
                "modified": storage.get_modified_time(key).isoformat(),
                "phase": storage.flags().phase,
            },
            ensure_ascii=False,
        )
    )


def register(group: click.Group) -> None:
    """Add the object commands to ``group``."""
    for command in (put_command, get_command, url_command, rm_command, stat_command):
        group.add_command(command)
