"""The certificate web service: a small ASGI app over :class:`~certstore.CertificateStorage`.

Needs the ``web`` extra (Starlette and uvicorn): ``pip install 'certstore[web]'``.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised by the missing-extra test
    raise ImportError(
        "certstore.web needs the 'web' extra (Starlette, uvicorn): pip install 'certstore[web]'"
    ) from err

from certstore.web._app import (
    DEFAULT_MAX_UPLOAD_BYTES,
    FALLBACK_HEADER,
    SOURCE_HEADER,
    CertificateService,
    create_app,
)
from certstore.web._exists_cache import ExistsCache
from certstore.web._redact import RedactFilter, redact
from certstore.web._redact import install as install_redaction

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FALLBACK_HEADER",
    "SOURCE_HEADER",
    "CertificateService",
    "ExistsCache",
    "RedactFilter",
    "create_app",
    "install_redaction",
    "redact",
]
