"""The certificate storage switched to certstore (shown in docs/django.md; tests load it)."""

# django-storages' setting names: moving from it is a change of BACKEND.
AWS_STORAGE_BUCKET_NAME = "deltacrown-certificates-prod"
AWS_S3_REGION_NAME = "us-east-1"
AWS_QUERYSTRING_EXPIRE = 600

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "certificates": {
        "BACKEND": "certstore.contrib.django.storage.CertificateS3Storage",
        "OPTIONS": {
            # Where FileSystemStorage kept the files: the authoritative copy until phase 3.
            "media_root": "/var/www/deltacrown/media",
            "media_url": "/media/",
            # The key prefix in the bucket (django-storages' "location").
            "location": "certificates/",
        },
    },
}

# The site's own table is the catalog of the backfill and the checks.
CERTSTORE_CATALOG = {
    "MODEL": "tournaments.Certificate",
    "FILE_FIELD": "file_pdf",
    "MIGRATED_FIELD": "migrated_to_s3_at",
    "TOURNAMENT_FIELD": "tournament_id",
    "SHA256_FIELD": "sha256",
    "MD5_FIELD": "md5",
}
