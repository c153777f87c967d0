"""Settings of the test site (loaded by ``tests/django/conftest.py`` with settings.configure).

It starts as a plain ``FileSystemStorage`` site: the ``certificates`` entry of ``STORAGES`` is
what each phase of the tests (and of a real rollout) switches to ``CertificateS3Storage``.
"""

from __future__ import annotations

import os

SECRET_KEY = "certsite-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "certstore.contrib.django",
    "certsite.tournaments",
]
DATABASES = {
    # The tests choose the file per session (conftest; CERTSITE_DB for manage.py), so xdist
    # workers never share one.
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CERTSITE_DB", ":memory:"),
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
MEDIA_ROOT = os.environ.get("CERTSITE_MEDIA_ROOT", "media")
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "certificates": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
}

# The site's table is the catalog of the backfill and the checks.
CERTSTORE_CATALOG = {
    "MODEL": "tournaments.Certificate",
    "FILE_FIELD": "file_pdf",
    "MIGRATED_FIELD": "migrated_to_s3_at",
    "TOURNAMENT_FIELD": "tournament_id",
    "SHA256_FIELD": "sha256",
    "MD5_FIELD": "md5",
}
