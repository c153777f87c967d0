"""docs/django.md shows real files: the settings example and the migration are these tests'."""

from __future__ import annotations

from pathlib import Path

from django.test.utils import override_settings

from certstore.contrib.django.catalog import DjangoCatalog
from certstore.contrib.django.storage import CertificateS3Storage, certificate_storage

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "django.md").read_text(encoding="utf-8")
SITE = Path(__file__).resolve().parent / "certsite"


def test_settings_example_is_the_file_and_configures_the_storage(tmp_path):
    text = (SITE / "settings_s3.py").read_text(encoding="utf-8")
    assert text.strip() in DOC

    import certsite.settings_s3 as example

    values = {name: getattr(example, name) for name in dir(example) if name.isupper()}
    with override_settings(**values):
        storage = certificate_storage()
        assert isinstance(storage, CertificateS3Storage)
        config = storage.config.settings
        assert (config.bucket, config.region, config.url_expiry) == (
            "deltacrown-certificates-prod",
            "us-east-1",
            600,
        )
        assert (config.media_root, config.key_prefix) == (
            "/var/www/deltacrown/media",
            "certificates/",
        )
        catalog = DjangoCatalog.from_settings(media_root=tmp_path)
        assert catalog.model._meta.label == "tournaments.Certificate"
        assert catalog.fields.sha256 == "sha256"


def test_sample_migration_and_model_fields_are_the_tested_ones():
    migration = SITE / "tournaments" / "migrations" / "0002_certificate_s3_migration.py"
    body = migration.read_text(encoding="utf-8").split('"""\n\n', 1)[1]
    assert body.strip() in DOC
    model = (SITE / "tournaments" / "models.py").read_text(encoding="utf-8")
    for line in model.splitlines():
        if " = models." in line:
            assert line in DOC, line


def test_documented_commands_and_options_exist():
    from django.core.management import load_command_class

    for name, options in {
        "backfill_certificates_to_s3": [
            "--dry-run",
            "--limit",
            "--batch-size",
            "--start-id",
            "--end-id",
            "--resume",
            "--resume-token",
            "--tournament-id",
            "--shard",
            "--verify-hash",
            "--no-verify-hash",
            "--verify-method",
            "--workers",
            "--engine",
            "--progress-interval",
            "--json",
        ],
        "check_certificate_consistency": [
            "--spot-check-rate",
            "--page-size",
            "--threshold-percent",
            "--seed",
            "--workers",
            "--output",
            "--json",
        ],
        "validate_certificates_s3": [
            "--sample-rate",
            "--tournament-id",
            "--repair",
            "--threshold-percent",
            "--seed",
            "--workers",
            "--output",
            "--json",
        ],
    }.items():
        assert f"`{name}`" in DOC
        parser = load_command_class("certstore.contrib.django", name).create_parser(
            "manage.py", name
        )
        known = {s for action in parser._actions for s in action.option_strings}
        for option in options:
            assert option in known, (name, option)
            assert f"`{option}" in DOC or option in DOC, (name, option)
