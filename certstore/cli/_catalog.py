"""``certstore catalog import|stats``: build the certificate catalog and look at it."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import click

from certstore.config import Settings
from certstore.errors import ConfigError

if TYPE_CHECKING:
    from certstore.catalog import Catalog

EXIT_OK, EXIT_FAILURE = 0, 1


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(name: str) -> str:
    """A file name for a one-line report: control characters (a newline in a name would
    break the line) shown as escapes; everything else, UTF-8 included, as it is."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], name)


def _catalog(url: str | None, *, create: bool = True) -> Catalog:
    from certstore.catalog import Catalog

    settings = Settings.from_env(**({"catalog_url": url} if url else {}))
    return Catalog(settings.catalog_url, create=create)


@click.group("catalog")
def catalog_group() -> None:
    """The certificate catalog (CERTSTORE_CATALOG_URL)."""


@catalog_group.command("import")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
@click.option("--tournament-id", type=int, help="Give every new row this tournament id.")
@click.option(
    "--tournament-id-from",
    "tournament_from",
    metavar="segment:N|regex:PATTERN",
    help="Take the tournament id from the N-th folder of the key, or from the first "
    "group of a regex (a whole number; otherwise left empty).",
)
@click.option(
    "--update-changed",
    is_flag=True,
    help="For files whose size or SHA-256 differs from their row: record the new "
    "content and clear the row's migration state (default: only report them).",
)
@click.option("--batch-size", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option("--catalog", "catalog_url", help="Catalog URL (default CERTSTORE_CATALOG_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(
    directory: str | None,
    tournament_id: int | None,
    tournament_from: str | None,
    update_changed: bool,
    batch_size: int,
    catalog_url: str | None,
    as_json: bool,
) -> int:
    """Walk DIRECTORY (default CERTSTORE_MEDIA_ROOT), hash every file, add new rows.

    Exit 1 when files changed since they were catalogued (and --update-changed was not given)
    or could not be imported; they are listed in the report.
    """
    from certstore.catalog import import_tree, tournament_rule

    if tournament_id is not None and tournament_from:
        raise ConfigError(
            "use --tournament-id or --tournament-id-from, not both", variable="--tournament-id"
        )
    settings = Settings.from_env()
    root = directory or settings.media_root
    with _catalog(catalog_url) as catalog:
        report = import_tree(
            catalog,
            root,
            tournament_id=tournament_id,
            tournament_from=tournament_rule(tournament_from),
            update_changed=update_changed,
            batch_size=batch_size,
            key_prefix=settings.key_prefix,
        )
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(
            f"scanned {report.scanned} files under {report.root}: added {report.added} "
            f"({report.bytes_added} bytes), unchanged {report.unchanged}, changed "
            f"{report.changed} (updated {report.updated}), not importable "
            f"{report.invalid}"
            + (
                f"; MD5 recorded for {report.md5_recorded} rows imported without one"
                if report.md5_recorded
                else ""
            )
        )
        for item in report.changed_details:
            click.echo(
                f"  changed: id={item['id']} {_printable(item['key'])}: size "
                f"{item['catalog_size']} "
                f"-> {item['local_size']}, sha256 {item['catalog_sha256'][:12]}… -> "
                f"{str(item['local_sha256'])[:12]}…"
                + (" (was migrated)" if item["was_migrated"] else "")
            )
        for item in report.invalid_details:
            click.echo(f"  not importable: {_printable(item['path'])}: {item['reason']}")
    problems = report.invalid + (0 if update_changed else report.changed)
    return EXIT_FAILURE if problems else EXIT_OK


@catalog_group.command("stats")
@click.option("--tournament-id", type=int, help="Only this tournament.")
@click.option("--shard", metavar="K/N", help="Only ids with id % N == K.")
@click.option("--catalog", "catalog_url", help="Catalog URL (default CERTSTORE_CATALOG_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats_command(
    tournament_id: int | None, shard: str | None, catalog_url: str | None, as_json: bool
) -> None:
    """Counts and bytes: total, migrated, verified, pending."""
    from certstore.catalog import Selection, parse_shard

    selection = Selection(tournament_id=tournament_id, shard=parse_shard(shard) if shard else None)
    with _catalog(catalog_url, create=False) as catalog:
        stats = catalog.stats(selection=selection)
        url = catalog.url
    if as_json:
        click.echo(json.dumps({"catalog": url, **stats.as_dict()}, indent=2))
        return
    click.echo(f"catalog:  {url}")
    click.echo(f"total:    {stats.total} ({stats.total_bytes} bytes)")
    from certstore._progress import percent_text

    share = percent_text(stats.migrated, stats.total) if stats.total else "0.0%"
    click.echo(f"migrated: {stats.migrated} ({share}, {stats.migrated_bytes} bytes)")
    click.echo(f"verified: {stats.verified}")
    click.echo(f"pending:  {stats.pending} ({stats.pending_bytes} bytes)")
    if stats.md5_missing:
        click.echo(
            f"no MD5 recorded: {stats.md5_missing} rows (the backfill hashes those files twice; "
            f"`certstore catalog import` of the same folder records it for unchanged files)"
        )


def register(group: click.Group) -> None:
    """Add ``catalog`` to ``group``."""
    group.add_command(catalog_group)
