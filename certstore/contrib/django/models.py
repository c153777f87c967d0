"""certstore's own table in a Django site: where each backfill run got to (its checkpoint)."""

from __future__ import annotations

from django.db import models


class BackfillCheckpoint(models.Model):  # type: ignore[misc]
    """The checkpoint of one backfill run key (a digest of its filters), as in the catalog.

    Every selected row with ``id <= last_id`` was processed; ``--resume`` starts after it.
    """

    run_key = models.CharField(max_length=64, primary_key=True)
    last_id = models.BigIntegerField()
    filters = models.TextField(help_text="The run's filters as JSON.")
    updated_at = models.DateTimeField()

    class Meta:
        app_label = "certstore"
        db_table = "certstore_backfill_checkpoint"

    def __str__(self) -> str:
        return f"{self.run_key} @ {self.last_id}"
