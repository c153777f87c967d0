"""Route a parsed request to its operation, the way S3 does: method, bucket/key, subresource.

Routing reads the HTTP request, not botocore's operation name, so a request the client
serialised wrongly lands where S3 would send it. The botocore operation name is used only to
word the error when nothing here handles the request.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from pytest_certstore.fake_s3 import _bucket_ops as buckets
from pytest_certstore.fake_s3 import _multipart_ops as multipart
from pytest_certstore.fake_s3 import _object_ops as objects
from pytest_certstore.fake_s3._errors import UnsupportedOperationError
from pytest_certstore.fake_s3._reply import Reply
from pytest_certstore.fake_s3._request import S3Request
from pytest_certstore.fake_s3._store import Store

__all__ = ["Handler", "route"]

Handler = Callable[[Store, S3Request], Reply]

#: Query parameters that never select an operation.
_NEUTRAL = frozenset({"x-id"})
_LIST_V2 = frozenset(
    {
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "start-after",
        "encoding-type",
        "fetch-owner",
    }
)
_LIST_BUCKETS = frozenset({"prefix", "max-buckets", "continuation-token", "bucket-region"})
_GET_OBJECT = frozenset(
    {
        "response-content-type",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-cache-control",
        "response-expires",
        "partNumber",
        "versionId",
    }
)
_PRESIGN = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "AWSAccessKeyId",
        "Signature",
        "Expires",
    }
)


def _only(query: dict[str, str], allowed: frozenset[str]) -> bool:
    return all(name in allowed or name in _NEUTRAL or name in _PRESIGN for name in query)


def _bucket_route(req: S3Request, min_part_size: int) -> tuple[str, Handler] | None:
    method, query = req.method, req.query
    if method == "GET":
        if query.get("list-type") == "2" and _only(query, _LIST_V2):
            return "ListObjectsV2", objects.list_objects_v2
        if _only(query, frozenset({"lifecycle"})) and "lifecycle" in query:
            return "GetBucketLifecycleConfiguration", buckets.get_bucket_lifecycle
        if _only(query, frozenset({"location"})) and "location" in query:
            return "GetBucketLocation", buckets.get_bucket_location
        if "uploads" in query and _only(
            query,
            frozenset(
                {
                    "uploads",
                    "prefix",
                    "max-uploads",
                    "key-marker",
                    "upload-id-marker",
                    "delimiter",
                    "encoding-type",
                }
            ),
        ):
            return "ListMultipartUploads", multipart.list_multipart_uploads
    elif method == "PUT":
        if _only(query, frozenset()):
            return "CreateBucket", buckets.create_bucket
        if _only(query, frozenset({"lifecycle"})) and "lifecycle" in query:
            return "PutBucketLifecycleConfiguration", buckets.put_bucket_lifecycle
    elif method == "DELETE":
        if _only(query, frozenset()):
            return "DeleteBucket", buckets.delete_bucket
        if _only(query, frozenset({"lifecycle"})) and "lifecycle" in query:
            return "DeleteBucketLifecycle", buckets.delete_bucket_lifecycle
    elif method == "HEAD":
        if _only(query, frozenset()):
            return "HeadBucket", buckets.head_bucket
    elif method == "POST" and "delete" in query and _only(query, frozenset({"delete"})):
        return "DeleteObjects", objects.delete_objects
    return None


def _object_route(req: S3Request, min_part_size: int) -> tuple[str, Handler] | None:
    method, query = req.method, req.query
    if method == "PUT":
        if (
            "uploadId" in query
            and "partNumber" in query
            and _only(query, frozenset({"uploadId", "partNumber"}))
        ):
            return "UploadPart", multipart.upload_part
        if _only(query, frozenset()):
            if "x-amz-copy-source" in req.headers:
                return "CopyObject", objects.copy_object
            return "PutObject", objects.put_object
    elif method == "GET":
        if "uploadId" in query and _only(
            query, frozenset({"uploadId", "max-parts", "part-number-marker"})
        ):
            return "ListParts", multipart.list_parts
        if _only(query, _GET_OBJECT):
            return "GetObject", objects.get_object
    elif method == "HEAD":
        if _only(query, _GET_OBJECT):
            return "HeadObject", objects.head_object
    elif method == "DELETE":
        if "uploadId" in query and _only(query, frozenset({"uploadId"})):
            return "AbortMultipartUpload", multipart.abort_multipart_upload
        if _only(query, frozenset()):
            return "DeleteObject", objects.delete_object
    elif method == "POST":
        if "uploads" in query and _only(query, frozenset({"uploads"})):
            return "CreateMultipartUpload", multipart.create_multipart_upload
        if "uploadId" in query and _only(query, frozenset({"uploadId"})):
            return "CompleteMultipartUpload", partial(
                multipart.complete_multipart_upload, min_part_size=min_part_size
            )
    return None


def route(req: S3Request, *, operation: str, min_part_size: int) -> tuple[str, Handler]:
    """(operation name, handler) for ``req``; UnsupportedOperationError when there is none."""
    if req.bucket is None:
        if req.method == "GET" and _only(req.query, _LIST_BUCKETS):
            return "ListBuckets", buckets.list_buckets
        found = None
    elif req.key is None:
        found = _bucket_route(req, min_part_size)
    else:
        found = _object_route(req, min_part_size)
    if found is None:
        target = req.url.split("://", 1)[-1]
        raise UnsupportedOperationError(operation or "this request", f"{req.method} {target}")
    return found
