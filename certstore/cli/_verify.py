"""``certstore validate`` and ``certstore check-consistency``: is S3 what the catalog says?"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import click

from certstore.config import Settings
from certstore.errors import ConfigError

EXIT_OK, EXIT_FAILURE = 0, 1
#: Same as :data:`certstore.verify.DEFAULT_THRESHOLD_PERCENT` (not imported: keeps start-up fast).
DEFAULT_THRESHOLD_PERCENT = 0.5


def _settings(media_root: str | None, catalog_url: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if media_root:
        overrides["media_root"] = media_root
    if catalog_url:
        overrides["catalog_url"] = catalog_url
    return Settings.from_env(**overrides)


def _write(path: str | None, data: dict[str, Any]) -> None:
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(target.name + ".tmp")
    temp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, target)


def _sample_rate(_ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value != value or not 0 < value <= 1:
        raise ConfigError(
            f"--{param.name.replace('_', '-')} {value!r} must be above 0 and at most 1 "  # type: ignore[union-attr]
            "(0.01 samples 1 %)",
            variable=f"--{param.name}",
            value=value,
        )
    return value


_common = [
    click.option(
        "--threshold-percent",
        type=click.FloatRange(0, 100),
        default=DEFAULT_THRESHOLD_PERCENT,
        show_default=True,
        help="FAIL (exit 1) when the mismatch rate is above this.",
    ),
    click.option(
        "--seed", type=int, help="Seed of the sample (default: random, recorded in the report)."
    ),
    click.option(
        "--workers",
        type=click.IntRange(1, 256),
        default=8,
        show_default=True,
        help="Concurrent downloads.",
    ),
    click.option("--output", type=click.Path(dir_okay=False), help="Write the JSON report here."),
    click.option("--json", "as_json", is_flag=True, help="Print the JSON report."),
    click.option(
        "--media-root",
        type=click.Path(file_okay=False),
        help="Local media root (default CERTSTORE_MEDIA_ROOT).",
    ),
    click.option("--catalog", "catalog_url", help="Catalog URL (default CERTSTORE_CATALOG_URL)."),
]


def _with_common(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


@click.command("validate")
@click.option(
    "--sample-rate",
    type=float,
    default=0.01,
    show_default=True,
    callback=_sample_rate,
    help="Share of migrated objects to download and hash (0 < R <= 1).",
)
@click.option("--tournament-id", type=int, help="Only this tournament's certificates.")
@click.option(
    "--repair",
    is_flag=True,
    help="Re-upload missing or mismatched objects from their verified local copy, "
    "then validate the same sample again (needs CERT_S3_BACKFILL_ENABLED).",
)
@_with_common
def validate_command(
    sample_rate: float,
    tournament_id: int | None,
    repair: bool,
    threshold_percent: float,
    seed: int | None,
    workers: int,
    output: str | None,
    as_json: bool,
    media_root: str | None,
    catalog_url: str | None,
) -> int:
    """Download a seeded sample of migrated certificates and compare their SHA-256.

    Exit 0 on PASS, 1 on FAIL (mismatch rate above the threshold, nothing to validate, or an
    object the repair could not fix).
    """
    from certstore.backends.s3 import S3Backend
    from certstore.catalog import Catalog, Selection
    from certstore.config import FlagSource
    from certstore.metrics import default_metrics
    from certstore.verify import validate_and_repair

    if repair and not FlagSource().current().backfill_enabled:
        raise ConfigError(
            "--repair writes to S3 and needs CERT_S3_BACKFILL_ENABLED=true",
            variable="CERT_S3_BACKFILL_ENABLED",
        )
    settings = _settings(media_root, catalog_url)
    seed = seed if seed is not None else secrets.randbelow(2**31)
    s3 = S3Backend.from_settings(settings)
    uploader = None
    with Catalog(settings.catalog_url, create=False) as catalog:
        try:
            if repair:
                from certstore.transfer import make_uploader

                uploader = make_uploader(
                    settings, workers=workers, engine="boto3", existing="overwrite"
                )
            run = validate_and_repair(
                catalog,
                s3,
                settings.media_root,
                sample_rate=sample_rate,
                seed=seed,
                threshold_percent=threshold_percent,
                workers=workers,
                selection=Selection(tournament_id=tournament_id),
                metrics=default_metrics(),
                uploader=uploader,
            )
        finally:
            if uploader is not None:
                uploader.close()
    data = run.as_dict()
    _write(output, data)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        passes = [run.first] + ([run.second] if run.second is not None else [])
        for number, report in enumerate(passes, 1):
            label = f"pass {number}: " if len(passes) > 1 else ""
            click.echo(
                f"{label}{report.status}: {report.mismatches} mismatch(es) in "
                f"{report.total_sampled} sampled of {report.population} migrated "
                f"({report.mismatch_rate_percent:.3f}%, threshold "
                f"{report.threshold_percent}%), seed {report.seed}"
            )
            for item in report.mismatch_details[:20]:
                click.echo(
                    f"  - id={item.id} {item.key}: {item.reason} (catalog "
                    f"{item.catalog_sha256[:12]}, s3 {(item.s3_sha256 or '-')[:12]}, "
                    f"local {(item.local_sha256 or '-')[:12]})"
                )
        if run.repair is not None:
            click.echo(
                f"repair: {len(run.repair.repaired)} repaired, {len(run.repair.failed)} failed"
            )
            for item in run.repair.failed:
                click.echo(
                    f"  - id={item['id']} {item['key']}: {item['reason']}: {item.get('detail', '')}"
                )
        click.echo(f"status: {run.status}")
    return EXIT_OK if run.status == "PASS" else EXIT_FAILURE


@click.command("check-consistency")
@click.option(
    "--spot-check-rate",
    type=float,
    default=0.01,
    show_default=True,
    callback=_sample_rate,
    help="Share of migrated objects to download and hash (0 < R <= 1).",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 1000),
    default=1000,
    show_default=True,
    help="Keys per S3 listing page and per catalog query.",
)
@_with_common
def consistency_command(
    spot_check_rate: float,
    page_size: int,
    threshold_percent: float,
    seed: int | None,
    workers: int,
    output: str | None,
    as_json: bool,
    media_root: str | None,
    catalog_url: str | None,
) -> int:
    """Catalog migrated count vs S3 objects under the prefix, missing keys, orphans, and
    SHA-256 spot checks. Exit 1 when the mismatch rate is above the threshold."""
    from certstore.backends.s3 import S3Backend
    from certstore.catalog import Catalog
    from certstore.consistency import check_consistency
    from certstore.metrics import default_metrics

    settings = _settings(media_root, catalog_url)
    seed = seed if seed is not None else secrets.randbelow(2**31)
    s3 = S3Backend.from_settings(settings)
    with Catalog(settings.catalog_url, create=False) as catalog:
        report = check_consistency(
            catalog,
            s3,
            settings.media_root,
            spot_check_rate=spot_check_rate,
            seed=seed,
            threshold_percent=threshold_percent,
            workers=workers,
            page_size=page_size,
            metrics=default_metrics(),
        )
    data = report.as_dict()
    _write(output, data)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(
            f"DB count (migrated): {report.catalog_migrated}, S3 count: "
            f"{report.s3_objects} (matched {report.matched})"
        )
        click.echo(
            f"missing in S3: {report.missing_count}, size mismatches: "
            f"{report.size_mismatch_count}, orphans in S3: {report.orphan_count}, "
            f"in S3 but not marked migrated: {report.unmarked_count}"
        )
        click.echo(
            f"spot checks: {report.spot_checked} (seed {report.seed}), mismatches: "
            f"{len(report.spot_mismatches)}"
        )
        for key in report.missing_in_s3[:20]:
            click.echo(f"  missing: {key}")
        for key in report.orphans[:20]:
            click.echo(f"  orphan: {key}")
        for item in report.spot_mismatches[:20]:
            click.echo(f"  spot: id={item.id} {item.key}: {item.reason}")
        click.echo(
            f"status: {report.status} ({report.mismatch_rate_percent:.3f}%, threshold "
            f"{report.threshold_percent}%)"
        )
    return EXIT_OK if report.status == "PASS" else EXIT_FAILURE


def register(group: click.Group) -> None:
    """Add ``validate`` and ``check-consistency`` to ``group``."""
    group.add_command(validate_command)
    group.add_command(consistency_command)
