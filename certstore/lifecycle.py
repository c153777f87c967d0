"""The bucket lifecycle policy: build it, check it, render it, apply it, read it back.

The background package's policy is one rule, ``CertificateArchival``, on the certificates
prefix: STANDARD -> STANDARD_IA at 30 days -> GLACIER at 365 days, the same for noncurrent
versions, and no expiration (a certificate is never deleted by a timer). It was written with the
deprecated top-level ``Prefix``; here the rule uses the current shape, ``Filter: {Prefix: ...}``.

A policy is checked *before* it is sent (:func:`check_policy`): S3 accepts some bad
configurations and rejects others only at request time, and moto accepts nearly anything, so the
rules of the AWS user guide ("Constraints and considerations for transitions") are encoded here:

* a transition targets one of the lifecycle storage classes (``STANDARD`` is not one);
* ``STANDARD_IA`` and ``ONEZONE_IA`` need at least 30 days (current and noncurrent versions);
* transitions only go down the waterfall (STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA,
  GLACIER_IR, GLACIER, DEEP_ARCHIVE) and their days strictly increase;
* an object must stay 30 days in STANDARD_IA/ONEZONE_IA before its next transition.

Minimum storage *durations* (GLACIER_IR and GLACIER 90 days, DEEP_ARCHIVE 180 days) are billing
rules, not request errors: leaving such a class earlier is reported as a warning.

:func:`compare_policies` compares two configurations semantically: rules by ID, transitions as
sets, ``Filter.Prefix`` and the deprecated top-level ``Prefix`` treated alike, so the order S3
returns things in never matters.

One addition to the background policy: ``AbortIncompleteMultipartUpload`` after
:data:`DEFAULT_ABORT_INCOMPLETE_DAYS` days. A multipart upload whose client died (a backfill
killed mid-file, a CreateMultipartUpload whose answer was lost and retried) keeps its parts,
billed and invisible to listings, until someone aborts it; no client can, having lost its
upload ID, so the bucket must. ``abort_incomplete_days=None`` (``--abort-incomplete-days 0``)
leaves it out.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certstore.errors import CertstoreError
from certstore.keys import normalize_prefix

logger = logging.getLogger(__name__)

RULE_ID = "CertificateArchival"

#: Days after which S3 aborts a multipart upload nobody completed (AWS's own suggestion: 7).
DEFAULT_ABORT_INCOMPLETE_DAYS = 7

#: The lifecycle storage classes in waterfall order: a transition may only move down this list.
STORAGE_CLASSES: tuple[str, ...] = (
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ONEZONE_IA",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
)

#: Classes an object must have spent this many days in S3 before entering (a request error).
MIN_DAYS_BEFORE: Mapping[str, int] = {"STANDARD_IA": 30, "ONEZONE_IA": 30}

#: Days an object must stay in a class before its next transition (a request error).
MIN_DAYS_IN_CLASS: Mapping[str, int] = {"STANDARD_IA": 30, "ONEZONE_IA": 30}

#: Minimum billed storage durations: leaving earlier costs an early-deletion fee (a warning).
MIN_BILLED_DAYS: Mapping[str, int] = {"GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}


class LifecycleError(CertstoreError):
    """A lifecycle policy is invalid, or the bucket's policy could not be read or written.

    ``problems`` lists every reason (one line each) so an operator fixes them all at once.
    """

    def __init__(
        self, message: str, *, problems: Sequence[str] = (), bucket: str | None = None
    ) -> None:
        super().__init__(message, problems=list(problems), bucket=bucket)


@dataclass(frozen=True, order=True)
class Transition:
    """Move objects to ``storage_class`` ``days`` after creation (or after becoming noncurrent)."""

    days: int
    storage_class: str

    @classmethod
    def parse(cls, text: str) -> Transition:
        """``"30:STANDARD_IA"`` -> ``Transition(30, "STANDARD_IA")`` (the CLI's format)."""
        days, sep, storage_class = text.partition(":")
        if not sep or not days.strip().isdigit() or not storage_class.strip():
            raise LifecycleError(
                f"transition {text!r} must look like DAYS:STORAGE_CLASS, e.g. 30:STANDARD_IA",
                problems=[f"bad transition {text!r}"],
            )
        return cls(int(days), storage_class.strip().upper())


DEFAULT_TRANSITIONS: tuple[Transition, ...] = (
    Transition(30, "STANDARD_IA"),
    Transition(365, "GLACIER"),
)


@dataclass(frozen=True)
class LifecyclePolicy:
    """One lifecycle rule on one prefix, with current and noncurrent transitions."""

    prefix: str = "certificates/"
    transitions: tuple[Transition, ...] = DEFAULT_TRANSITIONS
    noncurrent_transitions: tuple[Transition, ...] = DEFAULT_TRANSITIONS
    rule_id: str = RULE_ID
    enabled: bool = True
    abort_incomplete_days: int | None = DEFAULT_ABORT_INCOMPLETE_DAYS

    def to_configuration(self) -> dict[str, Any]:
        """The ``LifecycleConfiguration`` boto3 and ``aws s3api`` take (no expiration)."""
        rule: dict[str, Any] = {
            "ID": self.rule_id,
            "Status": "Enabled" if self.enabled else "Disabled",
            "Filter": {"Prefix": self.prefix},
        }
        if self.transitions:
            rule["Transitions"] = [
                {"Days": t.days, "StorageClass": t.storage_class} for t in sorted(self.transitions)
            ]
        if self.noncurrent_transitions:
            rule["NoncurrentVersionTransitions"] = [
                {"NoncurrentDays": t.days, "StorageClass": t.storage_class}
                for t in sorted(self.noncurrent_transitions)
            ]
        if self.abort_incomplete_days is not None:
            rule["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": self.abort_incomplete_days
            }
        return {"Rules": [rule]}

    def to_json(self) -> str:
        """JSON for ``aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration
        file://policy.json``."""
        return json.dumps(self.to_configuration(), indent=2) + "\n"


def build_policy(
    prefix: str = "certificates/",
    *,
    transitions: Iterable[Transition] | None = None,
    noncurrent_transitions: Iterable[Transition] | None = None,
    rule_id: str = RULE_ID,
    abort_incomplete_days: int | None = DEFAULT_ABORT_INCOMPLETE_DAYS,
) -> LifecyclePolicy:
    """The policy for ``prefix`` (normally ``Settings.key_prefix``), defaults from the package.

    ``noncurrent_transitions`` defaults to the same schedule as ``transitions``;
    ``abort_incomplete_days=None`` leaves out the rule's AbortIncompleteMultipartUpload.
    """
    current = tuple(transitions) if transitions is not None else DEFAULT_TRANSITIONS
    noncurrent = tuple(noncurrent_transitions) if noncurrent_transitions is not None else current
    return LifecyclePolicy(
        normalize_prefix(prefix),
        current,
        noncurrent,
        rule_id,
        abort_incomplete_days=abort_incomplete_days,
    )


def _check_schedule(label: str, schedule: Sequence[Transition]) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    for transition in schedule:
        if transition.storage_class not in STORAGE_CLASSES:
            problems.append(
                f"{label}: {transition.storage_class!r} is not a lifecycle storage class "
                f"(valid: {', '.join(STORAGE_CLASSES)})"
            )
        if transition.days < 0:
            problems.append(f"{label}: {transition.days} days is negative")
        minimum = MIN_DAYS_BEFORE.get(transition.storage_class)
        if minimum is not None and transition.days < minimum:
            problems.append(
                f"{label}: {transition.storage_class} at {transition.days} days is below the "
                f"provider minimum of {minimum} days"
            )
    ordered = sorted(schedule, key=lambda t: t.days)  # ties keep the order given
    if [t.days for t in schedule] != [t.days for t in ordered]:
        problems.append(f"{label}: transitions are not in increasing order of days")
    classes = [t.storage_class for t in ordered]
    if len(set(classes)) != len(classes):
        problems.append(f"{label}: a storage class appears more than once")
    days = [t.days for t in ordered]
    if len(set(days)) != len(days):
        problems.append(f"{label}: two transitions on the same day")
    for earlier, later in itertools.pairwise(ordered):
        if earlier.days == later.days:
            continue  # "two transitions on the same day" says it all; nothing to add per pair
        known = earlier.storage_class in STORAGE_CLASSES and later.storage_class in STORAGE_CLASSES
        if known and STORAGE_CLASSES.index(later.storage_class) <= STORAGE_CLASSES.index(
            earlier.storage_class
        ):
            problems.append(
                f"{label}: {earlier.storage_class} at {earlier.days} days then "
                f"{later.storage_class} at {later.days} days goes up the storage-class "
                f"waterfall ({' > '.join(STORAGE_CLASSES)})"
            )
        stay = MIN_DAYS_IN_CLASS.get(earlier.storage_class)
        if stay is not None and later.days - earlier.days < stay:
            problems.append(
                f"{label}: objects must stay {stay} days in {earlier.storage_class} "
                f"(day {earlier.days}) before moving to {later.storage_class} (day {later.days})"
            )
        billed = MIN_BILLED_DAYS.get(earlier.storage_class)
        if billed is not None and later.days - earlier.days < billed:
            warnings.append(
                f"{label}: leaving {earlier.storage_class} after {later.days - earlier.days} "
                f"days is billed as {billed} days (early-deletion fee)"
            )
    return problems, warnings


def policy_problems(policy: LifecyclePolicy) -> tuple[list[str], list[str]]:
    """``(problems, warnings)`` for ``policy``; any problem means it must not be sent."""
    problems: list[str] = []
    warnings: list[str] = []
    if not policy.rule_id or len(policy.rule_id) > 255:
        problems.append("the rule ID must be 1 to 255 characters")
    if not policy.transitions and not policy.noncurrent_transitions:
        problems.append("the rule has no transition at all")
    days = policy.abort_incomplete_days
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        problems.append(
            f"abort incomplete multipart uploads after {days!r} days: must be a whole number "
            "of days, at least 1 (or none, to leave the action out)"
        )
    for label, schedule in (
        ("transitions", policy.transitions),
        ("noncurrent transitions", policy.noncurrent_transitions),
    ):
        found, noted = _check_schedule(label, schedule)
        problems.extend(found)
        warnings.extend(noted)
    return problems, warnings


def check_policy(policy: LifecyclePolicy) -> list[str]:
    """Raise :class:`LifecycleError` listing every problem; return the warnings otherwise."""
    problems, warnings = policy_problems(policy)
    if problems:
        raise LifecycleError("invalid lifecycle policy: " + "; ".join(problems), problems=problems)
    return warnings


def _client_error(err: Exception, operation: str, bucket: str) -> LifecycleError:
    from certstore.backends.s3 import translate_error

    translated = translate_error(err, operation=operation, bucket=bucket, key=None)
    return LifecycleError(str(translated), bucket=bucket)


def apply_policy(client: Any, bucket: str, policy: LifecyclePolicy) -> list[str]:
    """Check ``policy`` and, only if it is valid, put it on ``bucket``; returns the warnings.

    This replaces the bucket's whole lifecycle configuration (that is what the S3 API does).
    """
    warnings = check_policy(policy)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=policy.to_configuration()
        )
    except (ClientError, BotoCoreError) as err:
        raise _client_error(err, "PutBucketLifecycleConfiguration", bucket) from err
    logger.info("lifecycle rule %s applied to s3://%s/%s", policy.rule_id, bucket, policy.prefix)
    return warnings


def read_configuration(client: Any, bucket: str) -> dict[str, Any] | None:
    """The bucket's lifecycle configuration, or None when it has none."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return None
        raise _client_error(err, "GetBucketLifecycleConfiguration", bucket) from err
    except BotoCoreError as err:
        raise _client_error(err, "GetBucketLifecycleConfiguration", bucket) from err
    return {"Rules": list(response.get("Rules", []))}


def _rule_prefix(rule: Mapping[str, Any]) -> str | None:
    filter_ = rule.get("Filter")
    if isinstance(filter_, Mapping):
        if "Prefix" in filter_:
            return str(filter_["Prefix"])
        and_ = filter_.get("And")
        if isinstance(and_, Mapping) and "Prefix" in and_ and len(and_) == 1:
            return str(and_["Prefix"])
        if filter_:
            return None
        return ""
    if "Prefix" in rule:
        return str(rule["Prefix"])
    return ""


#: Rule fields compared as their JSON text ("null" when absent), in report order.
_ACTIONS_AS_JSON = ("Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload")


def _normalise_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A comparable view of one rule: order-free sets, the two prefix spellings unified."""
    filter_ = rule.get("Filter")
    other_filter = None
    if isinstance(filter_, Mapping) and _rule_prefix(rule) is None:
        other_filter = json.dumps(filter_, sort_keys=True, default=str)
    return {
        "Status": rule.get("Status"),
        "Prefix": _rule_prefix(rule),
        "OtherFilter": other_filter,
        "Transitions": frozenset(
            (t.get("Days"), t.get("Date") and str(t.get("Date")), t.get("StorageClass"))
            for t in rule.get("Transitions", [])
        ),
        "NoncurrentVersionTransitions": frozenset(
            (t.get("NoncurrentDays"), t.get("NewerNoncurrentVersions"), t.get("StorageClass"))
            for t in rule.get("NoncurrentVersionTransitions", [])
        ),
        **{
            name: json.dumps(rule.get(name), sort_keys=True, default=str)
            for name in _ACTIONS_AS_JSON
        },
    }


def _describe_transitions(items: Iterable[tuple[Any, Any, Any]]) -> str:
    parts = [f"{cls}@{days}d" for days, _extra, cls in sorted(items, key=str)]
    return ", ".join(parts) or "none"


def compare_policies(expected: Mapping[str, Any], actual: Mapping[str, Any] | None) -> list[str]:
    """Every semantic difference between two lifecycle configurations (empty when equal).

    Rules are matched by ID. A rule in the bucket that the expected policy does not have is a
    difference too: it would act on objects as well.
    """
    if actual is None:
        return ["the bucket has no lifecycle configuration"]
    differences: list[str] = []
    expected_rules = {r.get("ID", ""): r for r in expected.get("Rules", [])}
    actual_rules = {r.get("ID", ""): r for r in actual.get("Rules", [])}
    for rule_id in sorted(set(expected_rules) - set(actual_rules)):
        differences.append(f"rule {rule_id!r} is missing from the bucket")
    for rule_id in sorted(set(actual_rules) - set(expected_rules)):
        differences.append(f"the bucket has an extra rule {rule_id!r}")
    for rule_id in sorted(set(expected_rules) & set(actual_rules)):
        want = _normalise_rule(expected_rules[rule_id])
        have = _normalise_rule(actual_rules[rule_id])
        for name, wanted in want.items():
            got = have[name]
            if wanted == got:
                continue
            if isinstance(wanted, frozenset):
                missing = wanted - got
                extra = got - wanted
                detail = []
                if missing:
                    detail.append(f"missing {_describe_transitions(missing)}")
                if extra:
                    detail.append(f"unexpected {_describe_transitions(extra)}")
                differences.append(f"rule {rule_id!r}: {name} differ: {'; '.join(detail)}")
            elif name in _ACTIONS_AS_JSON and got == "null":
                differences.append(f"rule {rule_id!r}: the bucket has no {name}, expected {wanted}")
            elif name in _ACTIONS_AS_JSON and wanted == "null":
                differences.append(f"rule {rule_id!r}: the bucket has {name} {got}, expected none")
            else:
                differences.append(
                    f"rule {rule_id!r}: {name} is {got!r} in the bucket, expected {wanted!r}"
                )
    return differences


@dataclass(frozen=True)
class ValidationResult:
    """What :func:`validate_bucket` found."""

    bucket: str
    present: bool
    differences: list[str] = field(default_factory=list)
    actual: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the bucket's policy matches the expected one exactly (semantically)."""
        return self.present and not self.differences

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "bucket": self.bucket,
            "ok": self.ok,
            "present": self.present,
            "differences": self.differences,
            "actual": self.actual,
        }


def validate_bucket(client: Any, bucket: str, policy: LifecyclePolicy) -> ValidationResult:
    """Read ``bucket``'s lifecycle configuration back and compare it with ``policy``."""
    actual = read_configuration(client, bucket)
    differences = compare_policies(policy.to_configuration(), actual)
    return ValidationResult(bucket, actual is not None, differences, actual)


__all__ = [
    "DEFAULT_ABORT_INCOMPLETE_DAYS",
    "DEFAULT_TRANSITIONS",
    "MIN_BILLED_DAYS",
    "MIN_DAYS_BEFORE",
    "MIN_DAYS_IN_CLASS",
    "RULE_ID",
    "STORAGE_CLASSES",
    "LifecycleError",
    "LifecyclePolicy",
    "Transition",
    "ValidationResult",
    "apply_policy",
    "build_policy",
    "check_policy",
    "compare_policies",
    "policy_problems",
    "read_configuration",
    "validate_bucket",
]
