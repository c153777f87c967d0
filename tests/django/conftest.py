"""The Django test site, configured for this folder's tests only.

pytest-django is active for the whole run once installed, but it acts only when Django settings
are configured. They are configured here with ``settings.configure()``, never through
``DJANGO_SETTINGS_MODULE`` (which would leak into every process the suite starts), and only when
the first test of this folder runs, not at collection: pytest-django then never sets up its
test environment or reorders the suite, and the in-process ``pytester`` sessions of the plugin's
tests can still set up theirs. None of these tests uses pytest-django's ``db`` fixture or marker;
the database is a SQLite file per session (per xdist worker), migrated once, emptied before each
test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from django.test.utils import override_settings  # noqa: E402

from certstore.metrics import Metrics, RecordingEmitter  # noqa: E402


def configure_django() -> None:
    """Configure the test site (once per process) and populate the app registry."""
    import django
    from django.conf import settings

    if not settings.configured:
        import certsite.settings as site_settings

        settings.configure(
            **{name: getattr(site_settings, name) for name in dir(site_settings) if name.isupper()}
        )
    django.setup()


@pytest.fixture(scope="session")
def django_site() -> None:
    """The Django test site, configured when the first test of this folder needs it."""
    configure_django()


@pytest.fixture(autouse=True)
def _django_site(django_site: None) -> None:
    """Every test in this folder runs with the test site configured."""


@pytest.fixture(scope="session")
def site_db(tmp_path_factory: pytest.TempPathFactory, django_site: None) -> Iterator[Path]:
    """The site's SQLite database, migrated once per session (per xdist worker)."""
    from django.core.management import call_command
    from django.db import connections

    path = tmp_path_factory.mktemp("certsite-db") / "site.sqlite3"
    connection = connections["default"]
    connection.close()
    connection.settings_dict["NAME"] = str(path)
    call_command("migrate", verbosity=0, interactive=False)
    yield path
    connections.close_all()


#: UTF-8 names, and a 0-byte file.
SEED_NAMES = ["Curaçao.pdf", "東京.pdf", "Δ-final.pdf", "empty.pdf", "nested-a.pdf", "nested-b.pdf"]


def seed_body(i: int, name: str) -> bytes:
    """The content of the ``i``-th seeded certificate."""
    return b"" if name == "empty.pdf" else f"%PDF certificate {i} {name}\n".encode() * 50


@dataclass
class Site:
    """One test's view of the site: its media root, its bucket, and the storage settings."""

    media_root: Path
    bucket: str
    endpoint: str
    recorder: RecordingEmitter
    _overrides: list[Any] = field(default_factory=list)

    def options(self, **extra: Any) -> dict[str, Any]:
        """``STORAGES`` OPTIONS for this test's bucket and media root."""
        options: dict[str, Any] = {
            "bucket_name": self.bucket,
            "endpoint_url": self.endpoint,
            "media_root": str(self.media_root),
            "media_url": "/media/",
            "metrics": Metrics([self.recorder]),
        }
        options.update(extra)
        return options

    def _apply(self, **overrides: Any) -> None:
        override = override_settings(**overrides)
        override.enable()
        self._overrides.append(override)

    def use_filesystem(self) -> None:
        """Phase "before": the certificate entry is Django's FileSystemStorage."""
        self._apply(
            MEDIA_ROOT=str(self.media_root),
            STORAGES={
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "certificates": {
                    "BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(self.media_root), "base_url": "/media/"},
                },
            },
        )

    def use_certstore(self, **extra: Any) -> None:
        """The certificate entry switched to CertificateS3Storage (a settings change only)."""
        self._apply(
            MEDIA_ROOT=str(self.media_root),
            STORAGES={
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "certificates": {
                    "BACKEND": "certstore.contrib.django.storage.CertificateS3Storage",
                    "OPTIONS": self.options(**extra),
                },
            },
        )

    def seed_filesystem_site(self, count: int | None = None) -> list[Any]:
        """Certificates saved while the site runs on FileSystemStorage (files on disk, rows in
        the table), as a site has them before the migration; alternating tournaments 1 and 2."""
        from certsite.tournaments.models import Certificate
        from django.core.files.base import ContentFile

        self.use_filesystem()
        rows = []
        for i, name in enumerate(SEED_NAMES[:count] if count else SEED_NAMES):
            cert = Certificate(tournament_id=1 if i % 2 == 0 else 2)
            cert.file_pdf.save(name, ContentFile(seed_body(i, name)))
            rows.append(cert)
        self.close()
        return rows

    def close(self) -> None:
        while self._overrides:
            self._overrides.pop().disable()


@pytest.fixture
def site(
    site_db: Path,
    media_root: Path,
    http_bucket: str,
    moto_endpoint: str,
    recorder: RecordingEmitter,
) -> Iterator[Site]:
    """An empty certificate table, a media root, a bucket; storage settings chosen by the test."""
    from certsite.tournaments.models import Certificate

    Certificate.objects.all().delete()
    state = Site(media_root, http_bucket, moto_endpoint, recorder)
    try:
        yield state
    finally:
        state.close()
