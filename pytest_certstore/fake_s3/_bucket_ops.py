"""Bucket-level operations: create, delete, head, list, location and lifecycle."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

from pytest_certstore.fake_s3._errors import (
    S3ErrorReply,
    invalid_argument,
    invalid_request,
    malformed_xml,
)
from pytest_certstore.fake_s3._reply import Reply
from pytest_certstore.fake_s3._request import S3Request
from pytest_certstore.fake_s3._store import OWNER_ID, OWNER_NAME, Bucket, Store, now
from pytest_certstore.fake_s3._xml import (
    NAMESPACE,
    child_text,
    document,
    element,
    iso_date,
    parse_xml,
)

__all__ = [
    "create_bucket",
    "delete_bucket",
    "delete_bucket_lifecycle",
    "get_bucket_lifecycle",
    "get_bucket_location",
    "head_bucket",
    "list_buckets",
    "put_bucket_lifecycle",
    "require_integrity_header",
    "validate_bucket_name",
]

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
#: What S3 answers in x-amz-transition-default-minimum-object-size since September 2024.
TRANSITION_DEFAULT = "all_storage_classes_128K"


def validate_bucket_name(name: str) -> None:
    """S3's general-purpose bucket naming rules; InvalidBucketName otherwise."""
    if (
        not _BUCKET_NAME.match(name)
        or ".." in name
        or _IP_ADDRESS.match(name)
        or name.startswith("xn--")
        or name.endswith("-s3alias")
    ):
        raise S3ErrorReply(
            "InvalidBucketName", 400, "The specified bucket is not valid.", BucketName=name
        )


def create_bucket(store: Store, req: S3Request) -> Reply:
    """CreateBucket, with S3's region rules and its us-east-1 legacy 200 on a re-create."""
    name = req.bucket or ""
    validate_bucket_name(name)
    constraint = None
    if req.body.strip():
        root = parse_xml(req.body, "CreateBucketConfiguration")
        constraint = child_text(root, "LocationConstraint") or None
    region = req.region
    if region == "us-east-1":
        if constraint == "us-east-1":
            raise S3ErrorReply(
                "InvalidLocationConstraint",
                400,
                "The specified location-constraint is not valid",
                LocationConstraint=constraint,
            )
        bucket_region = constraint or "us-east-1"
    else:
        if constraint != region:
            what = "unspecified" if constraint is None else constraint
            raise S3ErrorReply(
                "IllegalLocationConstraintException",
                400,
                f"The {what} location constraint is incompatible for the region specific "
                "endpoint this request was sent to.",
            )
        bucket_region = region
    with store.lock:
        existing = store.buckets.get(name)
        if existing is not None:
            if existing.region == "us-east-1" and region == "us-east-1":
                return Reply(200, {"Location": f"/{name}"})
            raise S3ErrorReply(
                "BucketAlreadyOwnedByYou",
                409,
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                BucketName=name,
            )
        store.buckets[name] = Bucket(name, now(), bucket_region)
    location = f"/{name}" if bucket_region == "us-east-1" else f"http://{name}.s3.amazonaws.com/"
    return Reply(200, {"Location": location})


def delete_bucket(store: Store, req: S3Request) -> Reply:
    """DeleteBucket: 409 BucketNotEmpty while objects remain."""
    name = req.bucket or ""
    with store.lock:
        bucket = store.bucket(name)
        if bucket.objects:
            raise S3ErrorReply(
                "BucketNotEmpty",
                409,
                "The bucket you tried to delete is not empty",
                BucketName=name,
            )
        del store.buckets[name]
    return Reply(204)


def head_bucket(store: Store, req: S3Request) -> Reply:
    """HeadBucket (404 with no body when missing)."""
    with store.lock:
        bucket = store.bucket(req.bucket or "")
    return Reply(200, {"x-amz-bucket-region": bucket.region, "x-amz-access-point-alias": "false"})


def get_bucket_location(store: Store, req: S3Request) -> Reply:
    """GetBucketLocation (empty for us-east-1, as S3 answers)."""
    with store.lock:
        bucket = store.bucket(req.bucket or "")
    region = "" if bucket.region == "us-east-1" else bucket.region
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{NAMESPACE}">'
        f"{region}</LocationConstraint>"
    ).encode()
    return Reply(200, {"Content-Type": "application/xml"}, body)


def list_buckets(store: Store, req: S3Request) -> Reply:
    """ListBuckets with ``prefix``, ``bucket-region``, ``max-buckets`` and continuation."""
    prefix = req.query.get("prefix", "")
    region = req.query.get("bucket-region")
    limit_text = req.query.get("max-buckets")
    start = ""
    token = req.query.get("continuation-token")
    if token:
        try:
            start = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
            start = start.decode("utf-8")
        except (ValueError, UnicodeError):
            raise invalid_argument(
                "The continuation token provided is incorrect", "continuation-token", token
            ) from None
    with store.lock:
        buckets = sorted(
            (
                b
                for b in store.buckets.values()
                if b.name.startswith(prefix)
                and b.name > start
                and (region is None or b.region == region)
            ),
            key=lambda b: b.name,
        )
    next_token = None
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 10000:
            raise invalid_argument("Invalid value for max-buckets", "max-buckets", limit_text)
        limit = int(limit_text)
        if len(buckets) > limit:
            buckets = buckets[:limit]
            next_token = base64.urlsafe_b64encode(buckets[-1].name.encode()).decode()
    items = "".join(
        f"<Bucket>{element('Name', b.name)}{element('CreationDate', iso_date(b.created))}"
        f"{element('BucketRegion', b.region)}</Bucket>"
        for b in buckets
    )
    inner = (
        f"<Owner>{element('ID', OWNER_ID)}{element('DisplayName', OWNER_NAME)}</Owner>"
        f"<Buckets>{items}</Buckets>{element('Prefix', req.query.get('prefix'))}"
        f"{element('ContinuationToken', next_token)}"
    )
    return Reply(
        200, {"Content-Type": "application/xml"}, document("ListAllMyBucketsResult", inner)
    )


def require_integrity_header(req: S3Request) -> None:
    """Operations S3 marks ``httpChecksumRequired`` need Content-MD5 or an x-amz-checksum."""
    if "content-md5" not in req.headers and not req.checksums():
        raise invalid_request(
            "Missing required header for this request: Content-MD5 OR x-amz-checksum-*"
        )


_ACTIONS = (
    "Expiration",
    "Transition",
    "NoncurrentVersionExpiration",
    "NoncurrentVersionTransition",
    "AbortIncompleteMultipartUpload",
)


def _validate_rule(rule: ET.Element, seen_ids: set[str]) -> None:
    status = child_text(rule, "Status")
    if status not in ("Enabled", "Disabled"):
        raise malformed_xml()
    if rule.find("Filter") is None and rule.find("Prefix") is None:
        raise malformed_xml()
    rule_id = child_text(rule, "ID")
    if rule_id is not None:
        if len(rule_id) > 255:
            raise invalid_argument(
                "ID length should not exceed allowed limit of 255", "ID", rule_id
            )
        if rule_id in seen_ids:
            raise invalid_argument(
                "Rule ID must be unique. Found same ID for more than one rule", "ID", rule_id
            )
        seen_ids.add(rule_id)
    if not any(rule.find(action) is not None for action in _ACTIONS):
        raise invalid_request("At least one action needs to be specified in a rule")
    for action in rule:
        for days in (*action.iter("Days"), *action.iter("DaysAfterInitiation")):
            text = days.text or ""
            if not text.isdigit() or int(text) <= 0:
                raise invalid_argument(
                    f"'{days.tag}' for {action.tag} action must be a positive integer",
                    days.tag,
                    text,
                )


def put_bucket_lifecycle(store: Store, req: S3Request) -> Reply:
    """PutBucketLifecycleConfiguration: validated like S3 does, stored as its rules' XML."""
    require_integrity_header(req)
    req.verify_body()
    root = parse_xml(req.body, "LifecycleConfiguration")
    rules = root.findall("Rule")
    if not rules or len(rules) > 1000 or len(rules) != len(root):
        raise malformed_xml()
    seen: set[str] = set()
    for rule in rules:
        _validate_rule(rule, seen)
    text = "".join(ET.tostring(rule, encoding="unicode") for rule in rules)
    with store.lock:
        store.bucket(req.bucket or "").lifecycle_rules = text
    return Reply(200, {"x-amz-transition-default-minimum-object-size": TRANSITION_DEFAULT})


def get_bucket_lifecycle(store: Store, req: S3Request) -> Reply:
    """GetBucketLifecycleConfiguration; NoSuchLifecycleConfiguration (404) when none is set."""
    name = req.bucket or ""
    with store.lock:
        rules = store.bucket(name).lifecycle_rules
    if rules is None:
        raise S3ErrorReply(
            "NoSuchLifecycleConfiguration",
            404,
            "The lifecycle configuration does not exist",
            BucketName=name,
        )
    return Reply(
        200,
        {
            "Content-Type": "application/xml",
            "x-amz-transition-default-minimum-object-size": TRANSITION_DEFAULT,
        },
        document("LifecycleConfiguration", rules),
    )


def delete_bucket_lifecycle(store: Store, req: S3Request) -> Reply:
    """DeleteBucketLifecycle (204 whether or not one was set, as S3 answers)."""
    with store.lock:
        store.bucket(req.bucket or "").lifecycle_rules = None
    return Reply(204)
