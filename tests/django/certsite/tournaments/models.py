"""The site's certificate table: the field the runbook migrates, and the fields it adds."""

from __future__ import annotations

from django.db import models

from certstore.contrib.django.storage import certificate_storage


class Certificate(models.Model):
    """One issued certificate (a PDF) of one tournament."""

    tournament_id = models.IntegerField(db_index=True)
    file_pdf = models.FileField(upload_to="pdf/%Y/%m/", storage=certificate_storage, max_length=255)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    md5 = models.CharField(max_length=32, blank=True, default="")
    migrated_to_s3_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        app_label = "tournaments"
