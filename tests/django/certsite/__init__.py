"""A minimal Django site whose certificates live in a FileField (the test project)."""
