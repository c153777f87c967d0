# ruff: noqa: RUF012
"""certstore's checkpoint table (``manage.py migrate certstore``)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="BackfillCheckpoint",
            fields=[
                ("run_key", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("last_id", models.BigIntegerField()),
                ("filters", models.TextField(help_text="The run's filters as JSON.")),
                ("updated_at", models.DateTimeField()),
            ],
            options={"db_table": "certstore_backfill_checkpoint"},
        ),
    ]
