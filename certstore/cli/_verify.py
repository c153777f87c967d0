"""``certstore validate`` and ``certstore check-consistency``: is S3 what the catalog says?

Thin wrappers over :mod:`certstore.jobs` and :mod:`certstore.reports`, which the Django
management commands run too: same checks, same report, same exit codes.
"""

from __future__ import annotations

from typing import Any

import click

from certstore.cli._types import FiniteFloatRange
from certstore.errors import ConfigError

#: Same as :data:`certstore.verify.DEFAULT_THRESHOLD_PERCENT` (not imported: keeps start-up fast).
DEFAULT_THRESHOLD_PERCENT = 0.5


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
        type=FiniteFloatRange(0, 100),
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
    output: str | None,
    as_json: bool,
    media_root: str | None,
    catalog_url: str | None,
    **options: Any,
) -> int:
    """Download a seeded sample of migrated certificates and compare their SHA-256.

    Exit 0 on PASS, 1 on FAIL (mismatch rate above the threshold, nothing to validate, or an
    object the repair could not fix).
    """
    from certstore.jobs import Site, run_validation
    from certstore.reports import check_output, emit_report, validation_text

    check_output(output)
    run = run_validation(Site.from_env(media_root, catalog_url), **options)
    return emit_report(run, validation_text, echo=click.echo, as_json=as_json, output=output)


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
    output: str | None,
    as_json: bool,
    media_root: str | None,
    catalog_url: str | None,
    **options: Any,
) -> int:
    """Catalog migrated count vs S3 objects under the prefix, missing keys, orphans, and
    SHA-256 spot checks. Exit 1 when the mismatch rate is above the threshold."""
    from certstore.jobs import Site, run_consistency
    from certstore.reports import check_output, consistency_text, emit_report

    check_output(output)
    report = run_consistency(Site.from_env(media_root, catalog_url), **options)
    return emit_report(report, consistency_text, echo=click.echo, as_json=as_json, output=output)


def register(group: click.Group) -> None:
    """Add ``validate`` and ``check-consistency`` to ``group``."""
    group.add_command(validate_command)
    group.add_command(consistency_command)
