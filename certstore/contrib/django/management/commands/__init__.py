"""Management commands: the backfill, the consistency check and the validator."""
