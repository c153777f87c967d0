"""Object operations: put, get (ranges, conditions), head, delete, delete-objects, copy, list."""

from __future__ import annotations

import base64
import hashlib
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from pytest_certstore.fake_s3 import _checksums
from pytest_certstore.fake_s3._bucket_ops import require_integrity_header
from pytest_certstore.fake_s3._errors import (
    S3ErrorReply,
    UnsupportedOperationError,
    invalid_argument,
    invalid_request,
    malformed_xml,
    no_such_key,
)
from pytest_certstore.fake_s3._reply import Reply
from pytest_certstore.fake_s3._request import S3Request
from pytest_certstore.fake_s3._store import OWNER_ID, OWNER_NAME, Store, StoredObject, now
from pytest_certstore.fake_s3._xml import (
    child_text,
    document,
    element,
    http_date,
    iso_date,
    parse_xml,
)

__all__ = [
    "check_key",
    "check_write_conditions",
    "copy_object",
    "delete_object",
    "delete_objects",
    "get_object",
    "head_object",
    "list_objects_v2",
    "object_attributes",
    "put_object",
    "reject_unsupported_headers",
]

#: Headers S3 stores with an object and returns verbatim.
STORED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)
_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
    "response-content-language": "Content-Language",
    "response-cache-control": "Cache-Control",
    "response-expires": "Expires",
}
_METADATA_LIMIT = 2048
_MAX_KEY_BYTES = 1024


def object_attributes(req: S3Request) -> tuple[str, dict[str, str], dict[str, str]]:
    """Content-Type, user metadata (x-amz-meta-*, lower-cased) and stored headers of a request."""
    metadata = {
        name[11:]: value for name, value in req.headers.items() if name.startswith("x-amz-meta-")
    }
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > _METADATA_LIMIT:
        raise S3ErrorReply(
            "MetadataTooLarge",
            400,
            "Your metadata headers exceed the maximum allowed metadata size.",
            Size=size,
            MaxSizeAllowed=_METADATA_LIMIT,
        )
    stored = {name: req.headers[name] for name in STORED_HEADERS if name in req.headers}
    content_type = req.headers.get("content-type") or "binary/octet-stream"
    return content_type, metadata, stored


_UNSUPPORTED_PREFIXES = (
    "x-amz-server-side-encryption-customer-",
    "x-amz-object-lock-",
    "x-amz-grant-",
)
_UNSUPPORTED_HEADERS = (
    "x-amz-tagging",
    "x-amz-website-redirect-location",
    "x-amz-server-side-encryption-aws-kms-key-id",
)
_SUPPORTED_VALUES = {
    "x-amz-acl": ("private", "bucket-owner-full-control"),
    "x-amz-storage-class": ("STANDARD",),
    "x-amz-server-side-encryption": ("AES256",),
}


def reject_unsupported_headers(req: S3Request, operation: str) -> None:
    """Fail loudly on write options the fake would otherwise silently drop."""
    for name, value in req.headers.items():
        if not name.startswith("x-amz-"):
            continue
        allowed = _SUPPORTED_VALUES.get(name)
        if (
            name.startswith(_UNSUPPORTED_PREFIXES)
            or name in _UNSUPPORTED_HEADERS
            or (allowed is not None and value not in allowed)
        ):
            raise UnsupportedOperationError(f"{operation} with {name}: {value}")


def check_key(key: str) -> None:
    """KeyTooLongError past 1,024 UTF-8 bytes."""
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise S3ErrorReply(
            "KeyTooLongError",
            400,
            "Your key is too long",
            Size=len(key.encode("utf-8")),
            MaxSizeAllowed=_MAX_KEY_BYTES,
        )


def _precondition_failed(condition: str) -> S3ErrorReply:
    return S3ErrorReply(
        "PreconditionFailed",
        412,
        "At least one of the pre-conditions you specified did not hold",
        Condition=condition,
    )


def _etag_matches(header: str, etag: str) -> bool:
    return any(part.strip() in ("*", etag, etag.strip('"')) for part in header.split(","))


def put_object(store: Store, req: S3Request) -> Reply:
    """PutObject: integrity headers verified, ETag = quoted MD5, conditional writes honoured."""
    key = req.key or ""
    check_key(key)
    reject_unsupported_headers(req, "PutObject")
    with store.lock:
        store.bucket(req.bucket or "")
    digests = req.verify_body()
    content_type, metadata, stored = object_attributes(req)
    etag = f'"{hashlib.md5(req.body).hexdigest()}"'
    checksum = None
    headers = {"ETag": etag}
    for algorithm, raw in digests.items():
        checksum = (algorithm, _checksums.b64(raw))
        headers[f"x-amz-checksum-{algorithm}"] = checksum[1]
    obj = StoredObject(key, req.body, etag, now(), content_type, metadata, stored, checksum)
    with store.lock:
        bucket = store.bucket(req.bucket or "")
        check_write_conditions(req, key, bucket.objects.get(key))
        bucket.objects[key] = obj
    return Reply(200, headers)


def check_write_conditions(req: S3Request, key: str, current: StoredObject | None) -> None:
    """S3's conditional writes (PutObject, CompleteMultipartUpload): ``If-None-Match: *``
    refuses an existing key (412), ``If-Match`` a missing key (404 NoSuchKey) or another
    ETag (412). Called under the store's lock, so the check and the write are one step."""
    if_none = req.headers.get("if-none-match")
    if_match = req.headers.get("if-match")
    if if_none is not None and current is not None and if_none.strip() == "*":
        raise _precondition_failed("If-None-Match")
    if if_match is not None:
        if current is None:
            raise no_such_key(key)
        if not _etag_matches(if_match, current.etag):
            raise _precondition_failed("If-Match")


def _check_conditions(req: S3Request, obj: StoredObject) -> None:
    if_match = req.headers.get("if-match")
    if if_match is not None and not _etag_matches(if_match, obj.etag):
        raise _precondition_failed("If-Match")
    since = req.headers.get("if-unmodified-since")
    if if_match is None and since and _date(since) and obj.last_modified > _date(since):
        raise _precondition_failed("If-Unmodified-Since")
    if_none = req.headers.get("if-none-match")
    if if_none is not None and _etag_matches(if_none, obj.etag):
        raise S3ErrorReply("NotModified", 304, "Not Modified")
    modified = req.headers.get("if-modified-since")
    if if_none is None and modified and _date(modified) and obj.last_modified <= _date(modified):
        raise S3ErrorReply("NotModified", 304, "Not Modified")


def _date(text: str):  # type: ignore[no-untyped-def]
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive, None to serve the whole object; InvalidRange when unsatisfiable.

    Like S3: a syntactically invalid or multi-range header is ignored (200 with everything).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":
            length = int(last_text)
            if length <= 0 or size == 0:
                raise _invalid_range(header, size)
            return max(0, size - length), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first < 0 or (last_text and last < first):
        return None
    if first >= size:
        raise _invalid_range(header, size)
    return first, min(last, size - 1)


def _invalid_range(header: str, size: int) -> S3ErrorReply:
    return S3ErrorReply(
        "InvalidRange",
        416,
        "The requested range is not satisfiable",
        RangeRequested=header,
        ActualObjectSize=size,
    )


def _object_headers(obj: StoredObject, req: S3Request, *, full: bool) -> dict[str, str]:
    headers = {
        "ETag": obj.etag,
        "Last-Modified": http_date(obj.last_modified),
        "Content-Type": obj.content_type,
        "Accept-Ranges": "bytes",
    }
    for name, value in obj.headers.items():
        headers[name.title()] = value
    for name, value in obj.metadata.items():
        headers["x-amz-meta-" + name] = value
    if obj.parts_count is not None and "partNumber" in req.query:
        headers["x-amz-mp-parts-count"] = str(obj.parts_count)
    if (
        full
        and obj.checksum is not None
        and (req.headers.get("x-amz-checksum-mode") or "").upper() == "ENABLED"
    ):
        headers[f"x-amz-checksum-{obj.checksum[0]}"] = obj.checksum[1]
        headers["x-amz-checksum-type"] = "COMPOSITE" if obj.parts_count else "FULL_OBJECT"
    for parameter, header in _OVERRIDES.items():
        if parameter in req.query:
            headers[header] = req.query[parameter]
    return headers


def _read(store: Store, req: S3Request, *, with_body: bool) -> Reply:
    if "partNumber" in req.query:
        raise UnsupportedOperationError("GetObject/HeadObject with partNumber")
    if "versionId" in req.query:
        raise UnsupportedOperationError(
            "GetObject/HeadObject with versionId", "the fast fake is unversioned"
        )
    with store.lock:
        obj = store.object(req.bucket or "", req.key or "")
    _check_conditions(req, obj)
    range_header = req.headers.get("range")
    span = _parse_range(range_header, obj.size) if range_header else None
    headers = _object_headers(obj, req, full=span is None)
    if span is None:
        headers["Content-Length"] = str(obj.size)
        return Reply(200, headers, obj.data if with_body else b"")
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{obj.size}"
    headers["Content-Length"] = str(last - first + 1)
    return Reply(206, headers, obj.data[first : last + 1] if with_body else b"")


def get_object(store: Store, req: S3Request) -> Reply:
    """GetObject: ranges (206 + Content-Range, 416 InvalidRange), conditions, overrides."""
    return _read(store, req, with_body=True)


def head_object(store: Store, req: S3Request) -> Reply:
    """HeadObject: GetObject's headers, no body (errors carry no body either)."""
    return _read(store, req, with_body=False)


def delete_object(store: Store, req: S3Request) -> Reply:
    """DeleteObject: 204 whether or not the key existed (NoSuchBucket if the bucket does not)."""
    with store.lock:
        store.bucket(req.bucket or "").objects.pop(req.key or "", None)
    return Reply(204)


def delete_objects(store: Store, req: S3Request) -> Reply:
    """DeleteObjects: up to 1,000 keys; Quiet reports errors only."""
    require_integrity_header(req)
    req.verify_body()
    root = parse_xml(req.body, "Delete")
    keys = [child_text(node, "Key") for node in root.findall("Object")]
    if not keys or len(keys) > 1000 or any(k is None for k in keys):
        raise malformed_xml()
    quiet = (child_text(root, "Quiet") or "").strip().lower() == "true"
    with store.lock:
        objects = store.bucket(req.bucket or "").objects
        for key in keys:
            objects.pop(key or "", None)
    deleted = "" if quiet else "".join(f"<Deleted>{element('Key', k)}</Deleted>" for k in keys)
    return Reply(200, {"Content-Type": "application/xml"}, document("DeleteResult", deleted))


def _copy_source(header: str) -> tuple[str, str]:
    source = header.split("?", 1)
    if len(source) > 1 and source[1].startswith("versionId="):
        raise UnsupportedOperationError(
            "CopyObject with a versionId source", "the fast fake is unversioned"
        )
    path = unquote(source[0]).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise invalid_argument("Invalid copy source object key", "x-amz-copy-source", header)
    return bucket, key


def copy_object(store: Store, req: S3Request) -> Reply:
    """CopyObject with the COPY (default) or REPLACE metadata directive."""
    if any(name.startswith("x-amz-copy-source-if-") for name in req.headers):
        raise UnsupportedOperationError("CopyObject with x-amz-copy-source-if-* conditions")
    reject_unsupported_headers(req, "CopyObject")
    source_bucket, source_key = _copy_source(req.headers["x-amz-copy-source"])
    key = req.key or ""
    check_key(key)
    directive = (req.headers.get("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive", directive)
    algorithm = (req.headers.get("x-amz-checksum-algorithm") or "").lower() or None
    with store.lock:
        target_bucket = store.bucket(req.bucket or "")
        source = store.object(source_bucket, source_key)
        if (
            source_bucket == req.bucket
            and source_key == key
            and directive == "COPY"
            and algorithm is None
        ):
            raise invalid_request(
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata, storage class, website redirect "
                "location or encryption attributes."
            )
    if directive == "REPLACE":
        content_type, metadata, stored = object_attributes(req)
    else:
        content_type, metadata, stored = source.content_type, source.metadata, source.headers
    checksum = source.checksum if source.parts_count is None else None
    if algorithm is not None:
        checksum = (algorithm, _checksums.b64(_checksums.compute(algorithm, source.data)))
    etag = (
        source.etag if source.parts_count is None else f'"{hashlib.md5(source.data).hexdigest()}"'
    )
    copy = StoredObject(
        key, source.data, etag, now(), content_type, dict(metadata), dict(stored), checksum
    )
    with store.lock:
        if store.buckets.get(target_bucket.name) is not target_bucket:
            store.bucket(req.bucket or "")
        target_bucket.objects[key] = copy
    inner = element("ETag", copy.etag) + element("LastModified", iso_date(copy.last_modified))
    if checksum is not None:
        inner += element(f"Checksum{checksum[0].upper()}", checksum[1])
    return Reply(200, {"Content-Type": "application/xml"}, document("CopyObjectResult", inner))


def _encode(value: str, url: bool) -> str:
    return quote(value, safe="/") if url else value


def list_objects_v2(store: Store, req: S3Request) -> Reply:
    """ListObjectsV2: prefix, delimiter, max-keys, continuation-token, start-after, encoding."""
    query = req.query
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    encoding = query.get("encoding-type")
    if encoding is not None and encoding != "url":
        raise invalid_argument(
            "Invalid Encoding Method specified in Request", "encoding-type", encoding
        )
    url = encoding == "url"
    max_text = query.get("max-keys", "1000")
    if not max_text.lstrip("-").isdigit() or int(max_text) < 0:
        raise invalid_argument(
            "Provided max-keys not an integer or within integer range", "max-keys", max_text
        )
    max_keys = min(int(max_text), 1000)
    token = query.get("continuation-token")
    start_after = query.get("start-after", "")
    marker = start_after
    if token is not None:
        try:
            marker = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
            marker = marker.decode("utf-8")
            if not marker:
                raise ValueError(token)
        except (ValueError, UnicodeError):
            raise invalid_argument(
                "The continuation token provided is incorrect", "continuation-token", token
            ) from None
    with store.lock:
        bucket = store.bucket(req.bucket or "")
        keys = sorted(k for k in bucket.objects if k.startswith(prefix) and k > marker)
        objects = bucket.objects
        contents: list[StoredObject] = []
        prefixes: list[str] = []
        truncated = False
        last = ""
        for key in keys:
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if prefixes and prefixes[-1] == common:
                        continue
                    if common <= marker:
                        continue
                    if len(contents) + len(prefixes) >= max_keys:
                        truncated = True
                        break
                    prefixes.append(common)
                    last = common
                    continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            contents.append(objects[key])
            last = key
    if max_keys == 0:
        truncated = False
    parts = [element("Name", req.bucket), element("Prefix", _encode(prefix, url))]
    if delimiter:
        parts.append(element("Delimiter", _encode(delimiter, url)))
    parts.append(element("MaxKeys", max_keys))
    if encoding:
        parts.append(element("EncodingType", encoding))
    parts.append(element("KeyCount", len(contents) + len(prefixes)))
    parts.append(element("IsTruncated", truncated))
    if token is not None:
        parts.append(element("ContinuationToken", token))
    if truncated:
        next_token = base64.urlsafe_b64encode(last.encode("utf-8")).decode("ascii")
        parts.append(element("NextContinuationToken", next_token))
    if start_after:
        parts.append(element("StartAfter", _encode(start_after, url)))
    fetch_owner = query.get("fetch-owner") == "true"
    owner = (
        f"<Owner>{element('ID', OWNER_ID)}{element('DisplayName', OWNER_NAME)}</Owner>"
        if fetch_owner
        else ""
    )
    for obj in contents:
        checksum = element("ChecksumAlgorithm", obj.checksum[0].upper()) if obj.checksum else ""
        parts.append(
            f"<Contents>{element('Key', _encode(obj.key, url))}"
            f"{element('LastModified', iso_date(obj.last_modified))}{element('ETag', obj.etag)}"
            f"{checksum}{element('Size', obj.size)}{owner}"
            f"{element('StorageClass', 'STANDARD')}</Contents>"
        )
    for common in prefixes:
        parts.append(f"<CommonPrefixes>{element('Prefix', _encode(common, url))}</CommonPrefixes>")
    return Reply(
        200, {"Content-Type": "application/xml"}, document("ListBucketResult", "".join(parts))
    )
