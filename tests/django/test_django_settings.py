"""Where the Django storage reads its configuration, and the errors for bad values."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test.utils import override_settings

from certstore.config import Flags
from certstore.contrib.django.settings import DjangoConfigError, storage_config
from certstore.contrib.django.storage import CertificateS3Storage, certificate_storage
from certstore.errors import ConfigError


def test_django_storages_setting_names_are_read(monkeypatch):
    with override_settings(
        AWS_STORAGE_BUCKET_NAME="site-bucket",
        AWS_S3_REGION_NAME="eu-west-1",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9/",
        AWS_QUERYSTRING_EXPIRE=600,
        AWS_LOCATION="certs",
        AWS_S3_ACCESS_KEY_ID="AKIASITE",
        AWS_S3_SECRET_ACCESS_KEY="site-secret",
        MEDIA_ROOT="/srv/media",
        MEDIA_URL="/files/",
    ):
        settings = storage_config({}).settings
    assert settings.bucket == "site-bucket"
    assert settings.region == "eu-west-1"
    assert settings.endpoint_url == "http://127.0.0.1:9"
    assert settings.url_expiry == 600
    assert settings.key_prefix == "certs/"
    assert (settings.access_key_id, settings.secret_access_key) == ("AKIASITE", "site-secret")
    assert (settings.media_root, settings.media_url) == ("/srv/media", "/files/")


def test_an_empty_aws_location_is_the_bucket_root(monkeypatch):
    """django-storages' AWS_LOCATION = "" keeps objects at the bucket root: a site switching
    BACKEND must not start writing under certificates/."""
    monkeypatch.delenv("AWS_S3_KEY_PREFIX", raising=False)
    with override_settings(AWS_LOCATION=""):
        assert storage_config({}).settings.key_prefix == ""
    with override_settings(AWS_S3_ENDPOINT_URL=""):  # other empty settings mean "not set"
        assert storage_config({}).settings.endpoint_url is None
    assert storage_config({}).settings.key_prefix == "certificates/"


def test_options_beat_django_settings_which_beat_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", "env-bucket")
    monkeypatch.setenv("AWS_QUERYSTRING_EXPIRE", "100")
    monkeypatch.setenv("AWS_S3_REGION_NAME", "ap-south-1")
    assert storage_config({}).settings.bucket == "env-bucket"
    with override_settings(AWS_STORAGE_BUCKET_NAME="site-bucket", AWS_QUERYSTRING_EXPIRE=200):
        settings = storage_config({}).settings
        assert (settings.bucket, settings.url_expiry) == ("site-bucket", 200)
        assert settings.region == "ap-south-1"
        settings = storage_config({"bucket_name": "opt-bucket", "querystring_expire": 300}).settings
        assert (settings.bucket, settings.url_expiry) == ("opt-bucket", 300)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"querystring_expire": "soon"}, "OPTIONS['querystring_expire']"),
        ({"querystring_expire": 8 * 24 * 3600}, "OPTIONS['querystring_expire']"),
        ({"endpoint_url": "localhost:9000"}, "OPTIONS['endpoint_url']"),
        ({"dual_write": "maybe"}, "OPTIONS['dual_write']"),
        ({"file_overwrite": "sometimes"}, "OPTIONS['file_overwrite']"),
        ({"location": "../up"}, "OPTIONS['location']"),
        ({"custom_domain": "cdn.example"}, "'custom_domain'"),
        ({"file_permissions_mode": 0o444}, "OPTIONS['file_permissions_mode']"),
    ],
)
def test_bad_options_name_themselves(options, named):
    with pytest.raises(DjangoConfigError) as info:
        CertificateS3Storage(**options)
    assert named in str(info.value)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ImproperlyConfigured)


def test_bad_django_setting_names_the_setting():
    with (
        override_settings(AWS_QUERYSTRING_EXPIRE="an hour"),
        pytest.raises(DjangoConfigError, match=r"settings\.AWS_QUERYSTRING_EXPIRE"),
    ):
        storage_config({})
    with (
        override_settings(FILE_UPLOAD_PERMISSIONS=0o4755),
        pytest.raises(DjangoConfigError, match=r"settings\.FILE_UPLOAD_PERMISSIONS"),
    ):
        storage_config({})


def test_flags_are_live_pinned_by_options_and_overridden_by_the_flags_file(monkeypatch, tmp_path):
    storage = CertificateS3Storage(media_root=str(tmp_path))
    assert storage.router.flags() == Flags()
    monkeypatch.setenv("CERT_S3_DUAL_WRITE", "true")
    assert storage.router.flags().dual_write, "an environment flip applies on the next call"

    pinned = CertificateS3Storage(media_root=str(tmp_path), dual_write=False, read_primary="on")
    assert pinned.router.flags() == Flags(dual_write=False, read_primary=True)

    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_READ_PRIMARY = false\n")
    rolled_back = CertificateS3Storage(
        media_root=str(tmp_path), read_primary=True, flags_file=str(flags_file)
    )
    assert rolled_back.router.flags().read_primary is False, "the rollback file wins"
    with override_settings(CERTSTORE_FLAGS_FILE=str(flags_file)):
        assert CertificateS3Storage(read_primary=True).router.flags().read_primary is False


def test_file_overwrite_reads_the_django_storages_setting():
    assert CertificateS3Storage().file_overwrite is False
    with override_settings(AWS_S3_FILE_OVERWRITE=True):
        assert CertificateS3Storage().file_overwrite is True
        assert CertificateS3Storage(file_overwrite=False).file_overwrite is False


def test_unsupported_django_storages_settings_are_logged(caplog):
    with (
        override_settings(AWS_S3_CUSTOM_DOMAIN="cdn.example.com"),
        caplog.at_level(logging.WARNING, logger="certstore.contrib.django.settings"),
    ):
        storage_config({})
    assert "AWS_S3_CUSTOM_DOMAIN" in caplog.text


def test_certificate_storage_follows_the_storages_setting(tmp_path):
    from django.core.files.storage import FileSystemStorage

    default_only = {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    with override_settings(STORAGES=default_only):
        assert isinstance(certificate_storage(), FileSystemStorage)
    with override_settings(
        STORAGES={
            **default_only,
            "certificates": {
                "BACKEND": "certstore.contrib.django.storage.CertificateS3Storage",
                "OPTIONS": {"media_root": str(tmp_path)},
            },
        }
    ):
        assert isinstance(certificate_storage(), CertificateS3Storage)
        assert certificate_storage().config.settings.media_root == str(tmp_path)
        with override_settings(AWS_STORAGE_BUCKET_NAME="changed"):
            assert certificate_storage().config.settings.bucket == "changed"
    with override_settings(
        CERTSTORE_STORAGE_ALIAS="other",
        STORAGES={
            **default_only,
            "other": {"BACKEND": "certstore.contrib.django.storage.CertificateS3Storage"},
        },
    ):
        assert isinstance(certificate_storage(), CertificateS3Storage)


def test_a_bad_storage_configuration_is_said_on_first_use_not_at_model_import(site):
    """Django builds a FileField's storage while importing the models: a bad OPTIONS value
    must not crash every manage.py command there, but be one clear error when used."""
    from django.core.files.storage import Storage

    site.use_certstore(querystring_expire="soon")
    storage = certificate_storage()
    assert isinstance(storage, Storage), "what Django checks when it imports a model"
    with pytest.raises(DjangoConfigError, match=r"OPTIONS\['querystring_expire'\]") as info:
        storage.exists("pdf/a.pdf")
    assert info.value.__context__ is None and info.value.__cause__ is None
    site.use_certstore()
    assert certificate_storage().exists("pdf/a.pdf") is False, "fixed settings take effect"
