"""certstore: move certificate files from a local media root to S3 with zero downtime and loss.

The public API: :class:`CertificateStorage` (the flag-driven router), its backends, the settings
and flags, the key rules, the metric catalog and the error tree.
"""

from __future__ import annotations

import logging

from certstore.backends import LocalBackend, ObjectInfo, S3Backend, SavedObject, StorageBackend
from certstore.config import Flags, FlagSource, Settings
from certstore.errors import (
    BucketNotFoundError,
    CertstoreError,
    ConfigError,
    EndpointUnreachableError,
    InvalidKeyError,
    ObjectNotFoundError,
    S3Error,
    S3ObjectNotFoundError,
    StorageError,
)
from certstore.keys import normalize_key
from certstore.metrics import CATALOG, Metrics, MetricSpec
from certstore.storage import CertificateStorage

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "CATALOG",
    "BucketNotFoundError",
    "CertificateStorage",
    "CertstoreError",
    "ConfigError",
    "EndpointUnreachableError",
    "FlagSource",
    "Flags",
    "InvalidKeyError",
    "LocalBackend",
    "MetricSpec",
    "Metrics",
    "ObjectInfo",
    "ObjectNotFoundError",
    "S3Backend",
    "S3Error",
    "S3ObjectNotFoundError",
    "SavedObject",
    "Settings",
    "StorageBackend",
    "StorageError",
    "__version__",
    "normalize_key",
]
