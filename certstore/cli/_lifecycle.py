"""``certstore lifecycle show|apply|validate``: the bucket's archival policy."""

from __future__ import annotations

import json
from typing import Any

import click

from certstore import lifecycle
from certstore.cli._app import EXIT_FAILURE, EXIT_USAGE
from certstore.config import Settings


def _parse_transitions(values: tuple[str, ...]) -> list[lifecycle.Transition] | None:
    if not values:
        return None
    try:
        return [lifecycle.Transition.parse(value) for value in values]
    except lifecycle.LifecycleError as err:
        raise click.BadParameter(str(err)) from err


def _policy_options(command: Any) -> Any:
    options = (
        click.option(
            "--prefix",
            default=None,
            help="Key prefix the rule covers [default: AWS_S3_KEY_PREFIX, certificates/].",
        ),
        click.option(
            "--transition",
            "transitions",
            multiple=True,
            metavar="DAYS:CLASS",
            help="A current-version transition; repeat for several "
            "[default: 30:STANDARD_IA and 365:GLACIER].",
        ),
        click.option(
            "--noncurrent-transition",
            "noncurrent",
            multiple=True,
            metavar="DAYS:CLASS",
            help="A noncurrent-version transition; repeat for several "
            "[default: the same as --transition].",
        ),
        click.option(
            "--rule-id",
            default=lifecycle.RULE_ID,
            show_default=True,
            help="ID of the lifecycle rule.",
        ),
        click.option(
            "--abort-incomplete-days",
            "abort_days",
            type=click.IntRange(min=0),
            default=lifecycle.DEFAULT_ABORT_INCOMPLETE_DAYS,
            show_default=True,
            metavar="DAYS",
            help="Abort multipart uploads nobody completed after DAYS (their parts are billed "
            "until then); 0 leaves the action out.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _build(
    prefix: str | None,
    transitions: tuple[str, ...],
    noncurrent: tuple[str, ...],
    rule_id: str,
    abort_days: int,
) -> tuple[Settings, lifecycle.LifecyclePolicy]:
    settings = Settings.from_env()
    policy = lifecycle.build_policy(
        prefix if prefix is not None else settings.key_prefix,
        transitions=_parse_transitions(transitions),
        noncurrent_transitions=_parse_transitions(noncurrent),
        rule_id=rule_id,
        abort_incomplete_days=abort_days or None,
    )
    return settings, policy


def _checked(policy: lifecycle.LifecyclePolicy) -> bool:
    """Print problems and warnings; False when the policy must not be used."""
    problems, warnings = lifecycle.policy_problems(policy)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if problems:
        click.echo("certstore: invalid lifecycle policy, nothing sent:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        return False
    return True


def _client(settings: Settings) -> Any:
    from certstore.backends.s3 import build_client

    return build_client(settings)


def _bucket(settings: Settings, bucket: str | None) -> str:
    return bucket or settings.require_bucket()


@click.group("lifecycle")
def lifecycle_group() -> None:
    """The bucket lifecycle policy (STANDARD -> STANDARD_IA at 30 d -> GLACIER at 365 d;
    unfinished multipart uploads aborted after 7 d)."""


@lifecycle_group.command("show")
@_policy_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="Write the JSON here (default: stdout).",
)
def show_command(
    prefix: str | None,
    transitions: tuple[str, ...],
    noncurrent: tuple[str, ...],
    rule_id: str,
    abort_days: int,
    output: str,
) -> int:
    """Print the policy as JSON for `aws s3api put-bucket-lifecycle-configuration
    --lifecycle-configuration file://...` (checked first; a bad policy prints nothing)."""
    _settings, policy = _build(prefix, transitions, noncurrent, rule_id, abort_days)
    if not _checked(policy):
        return EXIT_USAGE
    try:
        with click.open_file(output, "w") as target:
            target.write(policy.to_json())
    except OSError as err:
        raise click.BadParameter(
            f"cannot write {output}: {err.strerror or err}", param_hint="'--output'"
        ) from err
    return 0


@lifecycle_group.command("apply")
@click.option("--bucket", help="The bucket [default: AWS_STORAGE_BUCKET_NAME].")
@_policy_options
def apply_command(
    bucket: str | None,
    prefix: str | None,
    transitions: tuple[str, ...],
    noncurrent: tuple[str, ...],
    rule_id: str,
    abort_days: int,
) -> int:
    """Check the policy, put it on the bucket (replacing its lifecycle configuration), and read
    it back to confirm."""
    settings, policy = _build(prefix, transitions, noncurrent, rule_id, abort_days)
    if not _checked(policy):
        return EXIT_USAGE
    name = _bucket(settings, bucket)
    client = _client(settings)
    lifecycle.apply_policy(client, name, policy)
    result = lifecycle.validate_bucket(client, name, policy)
    if not result.ok:
        click.echo(f"applied to {name}, but the bucket returns a different policy:", err=True)
        for difference in result.differences:
            click.echo(f"  - {difference}", err=True)
        return EXIT_FAILURE
    click.echo(
        f"applied lifecycle rule {policy.rule_id!r} on prefix {policy.prefix!r} to "
        f"bucket {name} (read back: matches)"
    )
    return 0


@lifecycle_group.command("validate")
@click.option("--bucket", help="The bucket [default: AWS_STORAGE_BUCKET_NAME].")
@_policy_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate_command(
    bucket: str | None,
    prefix: str | None,
    transitions: tuple[str, ...],
    noncurrent: tuple[str, ...],
    rule_id: str,
    abort_days: int,
    as_json: bool,
) -> int:
    """Compare the bucket's lifecycle configuration with the expected policy (order does not
    matter); exit 1 when it differs or is absent."""
    settings, policy = _build(prefix, transitions, noncurrent, rule_id, abort_days)
    if not _checked(policy):
        return EXIT_USAGE
    name = _bucket(settings, bucket)
    result = lifecycle.validate_bucket(_client(settings), name, policy)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, default=str))
    elif result.ok:
        click.echo(f"OK: bucket {name} has the expected lifecycle policy")
    else:
        click.echo(f"DIFFERENT: bucket {name} does not have the expected lifecycle policy:")
        for difference in result.differences:
            click.echo(f"  - {difference}")
    return 0 if result.ok else EXIT_FAILURE


def register(group: click.Group) -> None:
    """Add ``lifecycle`` to ``group``."""
    group.add_command(lifecycle_group)
