"""Where the Django storage reads its configuration: ``STORAGES`` OPTIONS, Django settings, env.

Precedence, highest first, for every value: the storage's ``OPTIONS`` in ``STORAGES``, then the
Django setting, then the environment variable certstore's CLI reads, then certstore's default.
The Django setting names are django-storages' own (``AWS_STORAGE_BUCKET_NAME``,
``AWS_S3_REGION_NAME``, ``AWS_S3_ENDPOINT_URL``, ``AWS_QUERYSTRING_EXPIRE``, ``AWS_LOCATION``,
``AWS_S3_ACCESS_KEY_ID``...), and so are the OPTIONS keys where django-storages has one
(``bucket_name``, ``region_name``, ``endpoint_url``, ``querystring_expire``, ``location``...), so
moving from django-storages is a change of ``BACKEND``.

The migration flags are the exception: they are never frozen into Django settings (the
background incident was flags read once at import). They are resolved on every operation, from
the flags file (``CERTSTORE_FLAGS_FILE``, on top), then the OPTIONS, then the environment.
"""

from __future__ import annotations

import logging
import os
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from certstore.config import FLAG_OPTIONS, Settings, option, parse_bool
from certstore.errors import ConfigError

logger = logging.getLogger(__name__)

#: The ``STORAGES`` alias the certificate field uses unless ``CERTSTORE_STORAGE_ALIAS`` says
#: otherwise.
DEFAULT_ALIAS = "certificates"


class DjangoConfigError(ConfigError, ImproperlyConfigured):
    """A storage option or Django setting is invalid (``variable`` names it).

    Both a certstore :class:`~certstore.errors.ConfigError` and Django's
    ``ImproperlyConfigured``, so either ``except`` clause catches it.
    """


@dataclass(frozen=True)
class Source:
    """One configurable value: its OPTIONS key, Django setting names, certstore variable."""

    key: str
    settings: tuple[str, ...]
    variable: str
    #: Whether an empty string set in Django's settings is a value (``AWS_LOCATION = ""`` is
    #: django-storages' bucket root) rather than "not set".
    empty_is_value: bool = False


#: Every non-flag value, in the order the docs list them. ``variable`` is certstore's
#: environment variable (its parser and its ``Settings`` attribute come from certstore.config).
SOURCES: tuple[Source, ...] = (
    Source("bucket_name", ("AWS_STORAGE_BUCKET_NAME",), "AWS_STORAGE_BUCKET_NAME"),
    Source("region_name", ("AWS_S3_REGION_NAME",), "AWS_S3_REGION_NAME"),
    Source("endpoint_url", ("AWS_S3_ENDPOINT_URL",), "AWS_S3_ENDPOINT_URL"),
    Source("querystring_expire", ("AWS_QUERYSTRING_EXPIRE",), "AWS_QUERYSTRING_EXPIRE"),
    Source(
        "location", ("AWS_LOCATION", "AWS_S3_KEY_PREFIX"), "AWS_S3_KEY_PREFIX", empty_is_value=True
    ),
    Source("access_key", ("AWS_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), "AWS_ACCESS_KEY_ID"),
    Source(
        "secret_key", ("AWS_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"), "AWS_SECRET_ACCESS_KEY"
    ),
    Source("max_attempts", ("AWS_S3_MAX_ATTEMPTS",), "AWS_S3_MAX_ATTEMPTS"),
    Source("connect_timeout", ("AWS_S3_CONNECT_TIMEOUT",), "AWS_S3_CONNECT_TIMEOUT"),
    Source("read_timeout", ("AWS_S3_READ_TIMEOUT",), "AWS_S3_READ_TIMEOUT"),
    Source("checksum_mode", ("AWS_S3_CHECKSUM_MODE",), "AWS_S3_CHECKSUM_MODE"),
    Source("max_pool_connections", ("AWS_S3_MAX_POOL_CONNECTIONS",), "AWS_S3_MAX_POOL_CONNECTIONS"),
    Source("media_root", ("CERTSTORE_MEDIA_ROOT", "MEDIA_ROOT"), "CERTSTORE_MEDIA_ROOT"),
    # FileSystemStorage's OPTIONS keys and Django's settings (files 644 unless a site changed
    # it; folders: the umask's, unless FILE_UPLOAD_DIRECTORY_PERMISSIONS is set)
    Source(
        "file_permissions_mode",
        ("CERTSTORE_FILE_MODE", "FILE_UPLOAD_PERMISSIONS"),
        "CERTSTORE_FILE_MODE",
    ),
    Source(
        "directory_permissions_mode",
        ("CERTSTORE_DIRECTORY_MODE", "FILE_UPLOAD_DIRECTORY_PERMISSIONS"),
        "CERTSTORE_DIRECTORY_MODE",
    ),
    Source("media_url", ("CERTSTORE_MEDIA_URL", "MEDIA_URL"), "CERTSTORE_MEDIA_URL"),
    Source("catalog_url", ("CERTSTORE_CATALOG_URL",), "CERTSTORE_CATALOG_URL"),
)

#: OPTIONS keys that pin one migration flag (below the flags file, above the environment).
FLAG_KEYS: dict[str, str] = {flag.attribute: flag.variable for flag in FLAG_OPTIONS}

#: Other OPTIONS keys: ``file_overwrite`` (django-storages' name; setting
#: ``AWS_S3_FILE_OVERWRITE``) and ``flags_file`` (setting ``CERTSTORE_FLAGS_FILE``).
EXTRA_KEYS = ("file_overwrite", "flags_file")

#: django-storages settings this backend does not implement: a site switching over is told
#: (once, in the log) that they no longer apply.
UNSUPPORTED_SETTINGS = (
    "AWS_DEFAULT_ACL",
    "AWS_IS_GZIPPED",
    "AWS_QUERYSTRING_AUTH",
    "AWS_S3_ADDRESSING_STYLE",
    "AWS_S3_CUSTOM_DOMAIN",
    "AWS_S3_OBJECT_PARAMETERS",
    "AWS_S3_PROXIES",
    "AWS_S3_SESSION_PROFILE",
    "AWS_S3_SIGNATURE_VERSION",
    "AWS_S3_URL_PROTOCOL",
    "AWS_S3_USE_SSL",
    "AWS_S3_VERIFY",
)

_BY_KEY = {source.key: source for source in SOURCES}


@dataclass(frozen=True)
class StorageConfig:
    """What a :class:`~certstore.contrib.django.storage.CertificateS3Storage` runs with.

    ``settings`` is certstore's :class:`~certstore.config.Settings`; its ``env`` is the live
    mapping the flags are read from on every operation (pinned OPTIONS flags over
    ``os.environ``).
    """

    settings: Settings
    file_overwrite: bool = False


def _django_settings() -> Any:
    from django.conf import settings

    return settings


def _setting(names: tuple[str, ...], *, empty_is_value: bool = False) -> tuple[str, Any] | None:
    django_settings = _django_settings()
    for name in names:
        value = getattr(django_settings, name, None)
        if value is None:
            continue
        if isinstance(value, str) and value.strip() == "" and not empty_is_value:
            continue
        return name, value
    return None


def _parse(source_name: str, variable: str, value: Any) -> Any:
    try:
        return option(variable).parse(source_name, value)
    except DjangoConfigError:
        raise
    except ConfigError as err:
        raise DjangoConfigError(str(err), variable=source_name, value=value) from err


def _bool(source_name: str, value: Any) -> bool:
    try:
        return parse_bool(source_name, value)
    except ConfigError as err:
        raise DjangoConfigError(str(err), variable=source_name, value=value) from err


def storage_config(
    options: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    where: str = "OPTIONS",
) -> StorageConfig:
    """Resolve the storage configuration now (no network; clear errors for bad values).

    ``options`` are the ``OPTIONS`` of the ``STORAGES`` entry (``where`` names them in errors);
    ``env`` defaults to the live ``os.environ``.
    """
    options = dict(options or {})
    known = set(_BY_KEY) | set(FLAG_KEYS) | set(EXTRA_KEYS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise DjangoConfigError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))} for "
            f"CertificateS3Storage (known: {', '.join(sorted(known))})",
            variable=unknown[0],
        )
    overrides: dict[str, Any] = {}
    for source in SOURCES:
        attribute = option(source.variable).attribute
        if source.key in options and options[source.key] is not None:
            name = f"{where}[{source.key!r}]"
            overrides[attribute] = _parse(name, source.variable, options[source.key])
            continue
        found = _setting(source.settings, empty_is_value=source.empty_is_value)
        if found is not None:
            name, value = found
            overrides[attribute] = _parse(f"settings.{name}", source.variable, value)

    pinned: dict[str, str] = {}
    for key, variable in FLAG_KEYS.items():
        if key in options and options[key] is not None:
            value = _bool(f"{where}[{key!r}]", options[key])
            pinned[variable] = "true" if value else "false"
    flags_file = options.get("flags_file")
    if flags_file is None:
        found = _setting(("CERTSTORE_FLAGS_FILE",))
        flags_file = found[1] if found else None
    if flags_file is not None:
        pinned["CERTSTORE_FLAGS_FILE"] = os.fspath(flags_file)
    live_env: Mapping[str, str] = ChainMap(pinned, os.environ if env is None else env)  # type: ignore[arg-type]

    overwrite_value = options.get("file_overwrite")
    overwrite_name = f"{where}['file_overwrite']"
    if overwrite_value is None:
        found = _setting(("AWS_S3_FILE_OVERWRITE",))
        if found is not None:
            overwrite_name, overwrite_value = f"settings.{found[0]}", found[1]
    file_overwrite = False if overwrite_value is None else _bool(overwrite_name, overwrite_value)

    ignored = [name for name in UNSUPPORTED_SETTINGS if _setting((name,)) is not None]
    if ignored:
        logger.warning(
            "django-storages settings not used by CertificateS3Storage: %s", ", ".join(ignored)
        )
    try:
        settings = Settings.from_env(live_env, **overrides)
    except DjangoConfigError:
        raise
    except ConfigError as err:
        raise DjangoConfigError(str(err), variable=err.variable, value=err.value) from err
    return StorageConfig(settings=settings, file_overwrite=file_overwrite)


def storage_alias() -> str:
    """The ``STORAGES`` alias of the certificate storage (``CERTSTORE_STORAGE_ALIAS``)."""
    found = _setting(("CERTSTORE_STORAGE_ALIAS",))
    return str(found[1]) if found else DEFAULT_ALIAS
