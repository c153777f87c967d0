"""Storage backends: the local media root and S3, behind one protocol."""

from __future__ import annotations

from certstore.backends.base import Content, ObjectInfo, SavedObject, StorageBackend
from certstore.backends.local import LocalBackend
from certstore.backends.s3 import (
    ListedObject,
    S3Backend,
    build_client,
    client_config,
    shared_client,
    translate_error,
)

__all__ = [
    "Content",
    "ListedObject",
    "LocalBackend",
    "ObjectInfo",
    "S3Backend",
    "SavedObject",
    "StorageBackend",
    "build_client",
    "client_config",
    "shared_client",
    "translate_error",
]
