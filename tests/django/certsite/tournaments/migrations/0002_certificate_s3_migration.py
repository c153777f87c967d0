# ruff: noqa: RUF012
"""The S3 migration's schema change (the sample migration in docs/django.md).

Adds ``migrated_to_s3_at`` (set by the backfill once the S3 copy is verified; indexed, because
the backfill and the checks select on it), ``sha256`` and ``md5`` (the catalog's record of the
content, filled by the backfill when empty), and points the field at ``certificate_storage``
so the ``STORAGES`` setting decides where files go.
"""

from django.db import migrations, models

import certstore.contrib.django.storage


class Migration(migrations.Migration):
    dependencies = [("tournaments", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="certificate",
            name="migrated_to_s3_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="certificate",
            name="sha256",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="certificate",
            name="md5",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.AlterField(
            model_name="certificate",
            name="file_pdf",
            field=models.FileField(
                max_length=255,
                storage=certstore.contrib.django.storage.certificate_storage,
                upload_to="pdf/%Y/%m/",
            ),
        ),
    ]
