"""The app holding the ``Certificate`` model, as in the runbook (``apps.tournaments``)."""
