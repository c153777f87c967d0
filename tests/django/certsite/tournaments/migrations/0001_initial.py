# ruff: noqa: RUF012
"""The site before the S3 migration: a certificate FileField on the default storage."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="Certificate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("tournament_id", models.IntegerField(db_index=True)),
                ("file_pdf", models.FileField(max_length=255, upload_to="pdf/%Y/%m/")),
            ],
        ),
    ]
