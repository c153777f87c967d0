"""The Django app: ``INSTALLED_APPS = [..., "certstore.contrib.django"]`` adds the commands."""

from __future__ import annotations

from django.apps import AppConfig


class CertstoreConfig(AppConfig):  # type: ignore[misc]
    """certstore's management commands (``backfill_certificates_to_s3`` and the checks).

    The label is ``certstore``: the package's last name, ``django``, would read as Django's own.
    """

    name = "certstore.contrib.django"
    label = "certstore"
    verbose_name = "certstore (certificate storage migration)"
    default = True
