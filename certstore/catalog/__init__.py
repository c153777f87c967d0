"""The certificate catalog (SQLAlchemy Core; SQLite by default, PostgreSQL in production).

See :mod:`certstore.catalog._store` for the table and keyset pagination, and
:mod:`certstore.catalog._importer` for ``certstore catalog import``.
"""

from __future__ import annotations

from certstore._transfer_common import file_sha256
from certstore.catalog._importer import (
    ImportReport,
    file_digests,
    import_tree,
    tournament_rule,
)
from certstore.catalog._records import (
    CatalogStats,
    CertificateRecord,
    Checkpoint,
    Mark,
    MarkResult,
    NewCertificate,
    Selection,
    iter_keyset,
    parse_shard,
    utcnow,
)
from certstore.catalog._schema import (
    SCHEMA_VERSION,
    CatalogError,
    CatalogUnavailableError,
    SchemaError,
)
from certstore.catalog._store import Catalog

__all__ = [
    "SCHEMA_VERSION",
    "Catalog",
    "CatalogError",
    "CatalogStats",
    "CatalogUnavailableError",
    "CertificateRecord",
    "Checkpoint",
    "ImportReport",
    "Mark",
    "MarkResult",
    "NewCertificate",
    "SchemaError",
    "Selection",
    "file_digests",
    "file_sha256",
    "import_tree",
    "iter_keyset",
    "parse_shard",
    "tournament_rule",
    "utcnow",
]
