"""Multipart uploads: create, upload part, complete, abort, list parts, list uploads.

S3's rules kept: part numbers 1-10,000; every part but the last at least 5 MiB
(``EntityTooSmall``, the minimum is a constructor option of the fake); parts listed in
ascending order (``InvalidPartOrder``) with matching ETags (``InvalidPart``); the object's ETag
is the MD5 of the parts' binary MD5s followed by ``-N``; with a checksum algorithm the object
checksum is the composite (checksum of the parts' checksums, ``-N``).
"""

from __future__ import annotations

import hashlib

from pytest_certstore.fake_s3 import _checksums
from pytest_certstore.fake_s3._errors import (
    S3ErrorReply,
    UnsupportedOperationError,
    invalid_argument,
    invalid_request,
    malformed_xml,
)
from pytest_certstore.fake_s3._object_ops import (
    check_key,
    check_write_conditions,
    object_attributes,
    reject_unsupported_headers,
)
from pytest_certstore.fake_s3._reply import Reply
from pytest_certstore.fake_s3._request import S3Request
from pytest_certstore.fake_s3._store import (
    OWNER_ID,
    OWNER_NAME,
    MultipartUpload,
    Part,
    Store,
    StoredObject,
    now,
)
from pytest_certstore.fake_s3._xml import child_text, document, element, iso_date, parse_xml

__all__ = [
    "MIN_PART_SIZE",
    "abort_multipart_upload",
    "complete_multipart_upload",
    "create_multipart_upload",
    "list_multipart_uploads",
    "list_parts",
    "upload_part",
]

#: S3's minimum size of every part except the last.
MIN_PART_SIZE = 5 * 1024 * 1024
_MAX_PART_NUMBER = 10_000


def create_multipart_upload(store: Store, req: S3Request) -> Reply:
    """CreateMultipartUpload (records content type, metadata and checksum algorithm)."""
    key = req.key or ""
    check_key(key)
    reject_unsupported_headers(req, "CreateMultipartUpload")
    content_type, metadata, stored = object_attributes(req)
    algorithm = (req.headers.get("x-amz-checksum-algorithm") or "").lower() or None
    if algorithm is not None:
        _checksums.compute(algorithm, b"")
    with store.lock:
        bucket = store.bucket(req.bucket or "")
        upload = MultipartUpload(
            store.new_upload_id(), key, now(), content_type, metadata, stored, algorithm
        )
        bucket.uploads[upload.upload_id] = upload
    inner = (
        element("Bucket", req.bucket) + element("Key", key) + element("UploadId", upload.upload_id)
    )
    headers = {"Content-Type": "application/xml"}
    if algorithm:
        headers["x-amz-checksum-algorithm"] = algorithm.upper()
        headers["x-amz-checksum-type"] = "COMPOSITE"
    return Reply(200, headers, document("InitiateMultipartUploadResult", inner))


def _part_number(text: str | None) -> int:
    if text is None or not text.isdigit() or not 1 <= int(text) <= _MAX_PART_NUMBER:
        raise invalid_argument(
            "Part number must be an integer between 1 and 10000, inclusive", "partNumber", str(text)
        )
    return int(text)


def upload_part(store: Store, req: S3Request) -> Reply:
    """UploadPart: the part's integrity headers are verified like PutObject's."""
    if "x-amz-copy-source" in req.headers:
        raise UnsupportedOperationError("UploadPartCopy")
    number = _part_number(req.query.get("partNumber"))
    upload_id = req.query.get("uploadId", "")
    with store.lock:
        upload = store.upload(req.bucket or "", upload_id, req.key or "")
    digests = req.verify_body()
    checksum = None
    headers = {}
    for algorithm, raw in digests.items():
        if upload.checksum_algorithm and algorithm != upload.checksum_algorithm:
            raise invalid_request(
                f"Checksum Type mismatch occurred, expected checksum Type: "
                f"{upload.checksum_algorithm}, actual checksum Type: {algorithm}"
            )
        checksum = (algorithm, _checksums.b64(raw))
        headers[f"x-amz-checksum-{algorithm}"] = checksum[1]
    md5 = hashlib.md5(req.body).digest()
    etag = f'"{md5.hex()}"'
    part = Part(number, req.body, etag, md5, now(), checksum)
    with store.lock:
        store.upload(req.bucket or "", upload_id, req.key or "").parts[number] = part
    headers["ETag"] = etag
    return Reply(200, headers)


def complete_multipart_upload(store: Store, req: S3Request, min_part_size: int) -> Reply:
    """CompleteMultipartUpload: order, ETags and sizes checked; ETag is md5-of-md5s-N;
    ``If-None-Match`` / ``If-Match`` honoured as on PutObject (a refused completion leaves the
    upload open, as S3 does, to be completed again or aborted)."""
    upload_id = req.query.get("uploadId", "")
    key = req.key or ""
    root = parse_xml(req.body, "CompleteMultipartUpload")
    requested: list[tuple[int, str]] = []
    for node in root.findall("Part"):
        number_text = child_text(node, "PartNumber")
        etag = child_text(node, "ETag")
        if number_text is None or etag is None:
            raise malformed_xml()
        requested.append((_part_number(number_text), etag.strip().strip('"')))
    if not requested:
        raise malformed_xml()
    with store.lock:
        bucket = store.bucket(req.bucket or "")
        upload = store.upload(bucket.name, upload_id, key)
        previous = 0
        parts: list[Part] = []
        for number, etag in requested:
            if number <= previous:
                raise S3ErrorReply(
                    "InvalidPartOrder",
                    400,
                    "The list of parts was not in ascending order. Parts must be ordered by "
                    "part number.",
                    UploadId=upload_id,
                )
            previous = number
            part = upload.parts.get(number)
            if part is None or part.etag.strip('"') != etag:
                raise S3ErrorReply(
                    "InvalidPart",
                    400,
                    "One or more of the specified parts could not be found.  The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's "
                    "entity tag.",
                    UploadId=upload_id,
                    PartNumber=number,
                    ETag=etag,
                )
            parts.append(part)
        for part in parts[:-1]:
            if len(part.data) < min_part_size:
                raise S3ErrorReply(
                    "EntityTooSmall",
                    400,
                    "Your proposed upload is smaller than the minimum allowed object size.",
                    ProposedSize=len(part.data),
                    MinSizeAllowed=min_part_size,
                    PartNumber=part.number,
                    ETag=part.etag.strip('"'),
                )
        count = len(parts)
        etag = f'"{hashlib.md5(b"".join(p.md5 for p in parts)).hexdigest()}-{count}"'
        checksum = None
        algorithm = upload.checksum_algorithm
        if algorithm and all(p.checksum and p.checksum[0] == algorithm for p in parts):
            joined = b"".join(
                _checksums.decode_value(algorithm, p.checksum[1])  # type: ignore[index]
                for p in parts
            )
            checksum = (
                algorithm,
                f"{_checksums.b64(_checksums.compute(algorithm, joined))}-{count}",
            )
        obj = StoredObject(
            key,
            b"".join(p.data for p in parts),
            etag,
            now(),
            upload.content_type,
            upload.metadata,
            upload.headers,
            checksum,
            parts_count=count,
        )
        check_write_conditions(req, key, bucket.objects.get(key))
        bucket.objects[key] = obj
        del bucket.uploads[upload_id]
    inner = (
        element("Location", f"http://{bucket.name}.s3.amazonaws.com/{key}")
        + element("Bucket", bucket.name)
        + element("Key", key)
        + element("ETag", etag)
    )
    if checksum is not None:
        inner += element(f"Checksum{checksum[0].upper()}", checksum[1])
        inner += element("ChecksumType", "COMPOSITE")
    return Reply(
        200, {"Content-Type": "application/xml"}, document("CompleteMultipartUploadResult", inner)
    )


def abort_multipart_upload(store: Store, req: S3Request) -> Reply:
    """AbortMultipartUpload: 204, or NoSuchUpload (404)."""
    upload_id = req.query.get("uploadId", "")
    with store.lock:
        store.upload(req.bucket or "", upload_id, req.key or "")
        del store.bucket(req.bucket or "").uploads[upload_id]
    return Reply(204)


def list_parts(store: Store, req: S3Request) -> Reply:
    """ListParts with ``max-parts`` and ``part-number-marker``."""
    upload_id = req.query.get("uploadId", "")
    marker_text = req.query.get("part-number-marker", "0")
    max_text = req.query.get("max-parts", "1000")
    if not marker_text.isdigit() or not max_text.isdigit():
        raise invalid_argument(
            "Invalid value for max-parts or part-number-marker", "max-parts", max_text
        )
    marker, max_parts = int(marker_text), min(int(max_text), 1000)
    with store.lock:
        upload = store.upload(req.bucket or "", upload_id, req.key or "")
        parts = sorted((p for n, p in upload.parts.items() if n > marker), key=lambda p: p.number)
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    items = []
    for part in parts:
        checksum = (
            element(f"Checksum{part.checksum[0].upper()}", part.checksum[1])
            if part.checksum
            else ""
        )
        items.append(
            f"<Part>{element('PartNumber', part.number)}"
            f"{element('LastModified', iso_date(part.last_modified))}{element('ETag', part.etag)}"
            f"{checksum}{element('Size', len(part.data))}</Part>"
        )
    inner = (
        element("Bucket", req.bucket)
        + element("Key", req.key)
        + element("UploadId", upload_id)
        + element("PartNumberMarker", marker)
        + element("NextPartNumberMarker", parts[-1].number if parts else marker)
        + element("MaxParts", max_parts)
        + element("IsTruncated", truncated)
        + f"<Initiator>{element('ID', OWNER_ID)}{element('DisplayName', OWNER_NAME)}</Initiator>"
        + f"<Owner>{element('ID', OWNER_ID)}{element('DisplayName', OWNER_NAME)}</Owner>"
        + element("StorageClass", "STANDARD")
        + (
            element("ChecksumAlgorithm", upload.checksum_algorithm.upper())
            if upload.checksum_algorithm
            else ""
        )
        + "".join(items)
    )
    return Reply(200, {"Content-Type": "application/xml"}, document("ListPartsResult", inner))


def list_multipart_uploads(store: Store, req: S3Request) -> Reply:
    """ListMultipartUploads (prefix only; pagination markers are not implemented)."""
    for unsupported in ("key-marker", "upload-id-marker", "delimiter"):
        if req.query.get(unsupported):
            raise UnsupportedOperationError(f"ListMultipartUploads with {unsupported}")
    prefix = req.query.get("prefix", "")
    with store.lock:
        uploads = sorted(
            (
                u
                for u in store.bucket(req.bucket or "").uploads.values()
                if u.key.startswith(prefix)
            ),
            key=lambda u: (u.key, u.initiated),
        )
    items = "".join(
        f"<Upload>{element('Key', u.key)}{element('UploadId', u.upload_id)}"
        f"<Initiator>{element('ID', OWNER_ID)}{element('DisplayName', OWNER_NAME)}</Initiator>"
        f"<Owner>{element('ID', OWNER_ID)}{element('DisplayName', OWNER_NAME)}</Owner>"
        f"{element('StorageClass', 'STANDARD')}{element('Initiated', iso_date(u.initiated))}"
        f"</Upload>"
        for u in uploads
    )
    inner = (
        element("Bucket", req.bucket) + "<KeyMarker></KeyMarker><UploadIdMarker>"
        "</UploadIdMarker>"
        + element("Prefix", prefix)
        + element("MaxUploads", 1000)
        + element("IsTruncated", False)
        + items
    )
    return Reply(
        200, {"Content-Type": "application/xml"}, document("ListMultipartUploadsResult", inner)
    )
