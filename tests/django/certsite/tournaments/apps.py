"""App config of the test site's ``tournaments`` app."""

from __future__ import annotations

from django.apps import AppConfig


class TournamentsConfig(AppConfig):
    name = "certsite.tournaments"
    label = "tournaments"
