"""Django integration: a drop-in ``Storage``, a catalog over a site's model, management commands.

Install the extra (``pip install certstore[django]``), add ``"certstore.contrib.django"`` to
``INSTALLED_APPS`` for the commands, and point a ``STORAGES`` entry at
:class:`CertificateS3Storage`. Names are imported lazily so that importing this package (as
Django does when it loads the app) does not touch settings.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CatalogFields": "certstore.contrib.django.catalog",
    "DjangoCatalog": "certstore.contrib.django.catalog",
    "CertificateFile": "certstore.contrib.django.storage",
    "CertificateS3Storage": "certstore.contrib.django.storage",
    "DjangoConfigError": "certstore.contrib.django.settings",
    "StorageConfig": "certstore.contrib.django.settings",
    "certificate_storage": "certstore.contrib.django.storage",
    "certificates_storage": "certstore.contrib.django.storage",
    "storage_config": "certstore.contrib.django.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
