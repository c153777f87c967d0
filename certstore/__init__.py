"""certstore: move certificate files from a local media root to S3 with zero downtime and loss.

The public API: :class:`CertificateStorage` (the flag-driven router), its backends, the settings
and flags, the key rules, the metric catalog and the error tree.
"""

from __future__ import annotations

import logging

from certstore.config import Flags, FlagSource, Settings
from certstore.errors import (
    BucketNotFoundError,
    CertstoreError,
    ConfigError,
    EndpointUnreachableError,
    InvalidKeyError,
    KeyConflictError,
    ObjectNotFoundError,
    ReportWriteError,
    S3Error,
    S3ObjectNotFoundError,
    StorageError,
)
from certstore.keys import normalize_key
from certstore.metrics import CATALOG, Metrics, MetricSpec

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

#: Names exported lazily: importing ``certstore`` (every CLI start, every Django process, every
#: ``certstore backfill``) must not pay for SQLAlchemy, boto3's backends or the upload engines
#: until they are used.
_LAZY = {
    "CertificateStorage": "certstore.storage",
    "LocalBackend": "certstore.backends",
    "ObjectInfo": "certstore.backends",
    "S3Backend": "certstore.backends",
    "SavedObject": "certstore.backends",
    "StorageBackend": "certstore.backends",
    "Backfill": "certstore.backfill",
    "BackfillOptions": "certstore.backfill",
    "BackfillSummary": "certstore.backfill",
    "Catalog": "certstore.catalog",
    "CertificateRecord": "certstore.catalog",
    "ConsistencyReport": "certstore.consistency",
    "ResumeToken": "certstore.resume",
    "Selection": "certstore.catalog",
    "UploadItem": "certstore.transfer",
    "UploadResult": "certstore.transfer",
    "Uploader": "certstore.transfer",
    "ValidationReport": "certstore.verify",
    "check_consistency": "certstore.consistency",
    "make_uploader": "certstore.transfer",
    "validate": "certstore.verify",
    "validate_and_repair": "certstore.verify",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'certstore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CATALOG",
    "Backfill",
    "BackfillOptions",
    "BackfillSummary",
    "BucketNotFoundError",
    "Catalog",
    "CertificateRecord",
    "CertificateStorage",
    "CertstoreError",
    "ConfigError",
    "ConsistencyReport",
    "EndpointUnreachableError",
    "FlagSource",
    "Flags",
    "InvalidKeyError",
    "KeyConflictError",
    "LocalBackend",
    "MetricSpec",
    "Metrics",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ReportWriteError",
    "ResumeToken",
    "S3Backend",
    "S3Error",
    "S3ObjectNotFoundError",
    "SavedObject",
    "Selection",
    "Settings",
    "StorageBackend",
    "StorageError",
    "UploadItem",
    "UploadResult",
    "Uploader",
    "ValidationReport",
    "__version__",
    "check_consistency",
    "make_uploader",
    "normalize_key",
    "validate",
    "validate_and_repair",
]
