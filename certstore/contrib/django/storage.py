"""``CertificateS3Storage``: a Django ``Storage`` that is certstore's flag-driven router.

Every call goes through :class:`certstore.CertificateStorage`, so a Django site gets the same
phases, the same fallbacks and the same metrics as the CLI and the web service: the flags are
read on every operation, the local media root stays authoritative until phase 3, and nothing S3
does outside phase 3 can fail a request.

Names follow Django's contract: :meth:`get_available_name` never returns a taken name (Django's
``_<random>`` alternatives, ``max_length`` respected) unless ``file_overwrite`` is on, and every
name is checked by :mod:`certstore.keys` before anything is written (a bad one raises
``SuspiciousFileOperation`` naming the key and the rule). Whether a name is taken is asked of
the authoritative copy only (local, or S3 in phase 3): asking the router would count a read
fallback for every new upload in phase 2 and trip the runbook's fallback alert.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import pathlib
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, BinaryIO

from django.conf import settings as django_settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage
from django.core.files.utils import validate_file_name
from django.core.signals import setting_changed
from django.utils import timezone
from django.utils.deconstruct import deconstructible
from django.utils.functional import LazyObject, empty

from certstore.contrib.django.settings import (
    DjangoConfigError,
    StorageConfig,
    storage_alias,
    storage_config,
)
from certstore.errors import ConfigError, InvalidKeyError
from certstore.keys import MAX_SEGMENT_BYTES, normalize_key
from certstore.metrics import Metrics
from certstore.storage import CertificateStorage

_READ_MODES = ("rb",)


class CertificateFile(File):  # type: ignore[misc]
    """A Django ``File`` over a certificate stream; its size comes from the storage.

    An S3 body cannot seek, so Django's usual size probe (seek to the end) would fail.
    """

    def __init__(self, file: BinaryIO, name: str, storage: CertificateS3Storage) -> None:
        super().__init__(file, name)
        self._storage = storage
        self.mode = "rb"

    @property  # type: ignore[override]
    def size(self) -> int:
        """Size in bytes, asked of the storage (same routing as the read)."""
        cached = self.__dict__.get("_size")
        if cached is None:
            cached = self.__dict__["_size"] = self._storage.size(self.name)
        return int(cached)


@deconstructible(path="certstore.contrib.django.storage.CertificateS3Storage")
class CertificateS3Storage(Storage):  # type: ignore[misc]
    """Django storage backed by :class:`certstore.CertificateStorage`.

    Configure it as a ``STORAGES`` entry (``OPTIONS`` are the keyword arguments; see
    :mod:`certstore.contrib.django.settings` for every key and its Django setting).
    ``router`` and ``metrics`` are for embedding and tests: a ready router replaces the one
    built from the configuration.
    """

    def __init__(
        self,
        *,
        router: CertificateStorage | None = None,
        metrics: Metrics | None = None,
        **options: Any,
    ) -> None:
        self.options = dict(options)
        self.config: StorageConfig = storage_config(options)
        self._metrics = metrics
        self._router = router
        self._lock = threading.Lock()

    @property
    def router(self) -> CertificateStorage:
        """The certstore router (built on first use: building an S3 client costs ~0.1 s)."""
        router = self._router
        if router is None:
            with self._lock:
                if self._router is None:
                    self._router = CertificateStorage.from_settings(
                        self.config.settings, metrics=self._metrics
                    )
                router = self._router
        return router

    @property
    def file_overwrite(self) -> bool:
        """Whether saving under a taken name replaces the old file (django-storages' option)."""
        return self.config.file_overwrite

    def key(self, name: str, *, to_be_shortened: bool = False) -> str:
        """The certstore key for a Django name, or ``SuspiciousFileOperation`` saying why not.

        ``to_be_shortened``: a file name longer than a filesystem takes is let through, because
        ``get_available_name`` is about to shorten it to the field's ``max_length``; the name
        actually written is checked in full by ``_save``.
        """
        limit = None if to_be_shortened else MAX_SEGMENT_BYTES
        try:
            return normalize_key(str(name), max_segment_bytes=limit)
        except InvalidKeyError as err:
            raise SuspiciousFileOperation(f"certificate name rejected: {err}") from err

    def _save(self, name: str, content: Any) -> str:
        key = self.key(name)
        if hasattr(content, "seek"):
            with contextlib.suppress(OSError, ValueError):
                content.seek(0)
        content_type = getattr(content, "content_type", None) or mimetypes.guess_type(key)[0]
        return self.router.save(key, content, content_type=content_type)

    def _open(self, name: str, mode: str = "rb") -> CertificateFile:
        if mode not in _READ_MODES:
            raise ValueError(
                f"CertificateS3Storage opens certificates for reading in binary mode only "
                f"(mode 'rb'); got mode {mode!r} for {name!r}: save new content with "
                f"storage.save() or FieldFile.save()"
            )
        key = self.key(name)
        return CertificateFile(self.router.open(key), key, self)

    def exists(self, name: str) -> bool:
        """Whether ``name`` can be read (S3 first in phase 2, with the local fallback)."""
        return self.router.exists(self.key(name))

    def size(self, name: str) -> int:
        """Size in bytes; ``FileNotFoundError`` (``ObjectNotFoundError``) when nobody has it."""
        return self.router.size(self.key(name))

    def url(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        expire: int | None = None,
        http_method: str | None = None,
        *,
        download_name: str | None = None,
    ) -> str:
        """A download URL: presigned S3 when reads go to S3 and S3 holds the certificate, the
        media URL otherwise (phase 2 asks S3 first, so a certificate not migrated yet gets a
        working local link, counted as ``cert.s3.url.fallback{reason=missing}``).

        The signature is django-storages' (``parameters``, ``expire``, ``http_method``) so
        calls written for it keep working; only a GET without extra parameters is supported,
        anything else is refused rather than silently ignored.
        """
        if parameters:
            raise ValueError(
                f"CertificateS3Storage.url() does not take S3 parameters "
                f"({', '.join(sorted(parameters))}); use download_name= for the file name"
            )
        if http_method not in (None, "GET", "get"):
            raise ValueError(f"CertificateS3Storage.url() only makes GET URLs, not {http_method!r}")
        if expire is not None and (
            isinstance(expire, bool) or not isinstance(expire, int) or not 1 <= expire <= 604800
        ):
            raise ValueError(
                f"CertificateS3Storage.url(expire={expire!r}): seconds from 1 to 604800 "
                "(SigV4 presigned URLs live at most 7 days)"
            )
        return self.router.url(
            self.key(name), expires=expire, download_name=download_name, check_exists=True
        )

    def delete(self, name: str) -> None:
        """Delete everywhere the certificate may live (a missing file is not an error)."""
        if not name:
            raise ValueError("The name must be given to delete().")
        self.router.delete(self.key(name))

    def _as_django_time(self, value: datetime) -> datetime:
        if django_settings.USE_TZ:
            return value
        return timezone.make_naive(value)

    def get_modified_time(self, name: str) -> datetime:
        """Last modification (S3's LastModified when reads go to S3); aware iff ``USE_TZ``."""
        return self._as_django_time(self.router.get_modified_time(self.key(name)))

    def get_created_time(self, name: str) -> datetime:
        """Creation time as the local filesystem knows it; aware iff ``USE_TZ``."""
        return self._as_django_time(self.router.get_created_time(self.key(name)))

    def get_accessed_time(self, name: str) -> datetime:
        """Last access as the local filesystem knows it; aware iff ``USE_TZ``."""
        return self._as_django_time(self.router.get_accessed_time(self.key(name)))

    def _name_taken(self, key: str) -> bool:
        """Whether the authoritative copy holds ``key`` (no read metrics, no S3 call before 3)."""
        router = self.router
        s3_only = router.flags().s3_only
        backend = router.s3 if s3_only else router.local
        if backend is None:
            where = "S3 (CERT_S3_ONLY is on)" if s3_only else "the local media root"
            raise ConfigError(
                f"cannot check whether {key!r} is taken: {where} is not configured",
                variable="AWS_STORAGE_BUCKET_NAME" if s3_only else "CERTSTORE_MEDIA_ROOT",
            )
        return backend.exists(key)

    def is_name_available(self, name: str, max_length: int | None = None) -> bool:
        """Free for new content: not taken where writes go, and within ``max_length``."""
        if max_length and len(name) > max_length:
            return False
        if self.file_overwrite:
            return True
        return not self._name_taken(self.key(name))

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """A free name for ``name``, as Django's ``Storage`` defines it, on every Django version.

        Taken names get Django's ``_<7 random chars>`` alternative before the extensions; a name
        longer than ``max_length`` is shortened (from the end of its stem) until it fits, and
        ``SuspiciousFileOperation`` says so when nothing of the stem is left.
        """
        name = str(name).replace("\\", "/")
        self.key(name, to_be_shortened=max_length is not None)
        dir_name, file_name = os.path.split(name)
        if ".." in pathlib.PurePath(dir_name).parts:
            raise SuspiciousFileOperation(f"Detected path traversal attempt in '{dir_name}'")
        validate_file_name(file_name)
        file_ext = "".join(pathlib.PurePath(file_name).suffixes)
        file_root = file_name.removesuffix(file_ext)
        if self.file_overwrite:
            return self._fit_overwrite(name, dir_name, file_root, file_ext, max_length)
        while not self.is_name_available(name, max_length=max_length):
            name = os.path.join(dir_name, self.get_alternative_name(file_root, file_ext))
            if max_length is None:
                continue
            truncation = len(name) - max_length
            if truncation > 0:
                file_root = file_root[:-truncation]
                if not file_root:
                    raise SuspiciousFileOperation(
                        f'Storage can not find an available filename for "{name}". Please '
                        f"make sure that the corresponding file field allows sufficient "
                        f'"max_length".'
                    )
                name = os.path.join(dir_name, self.get_alternative_name(file_root, file_ext))
        return name

    @staticmethod
    def _fit_overwrite(
        name: str, dir_name: str, file_root: str, file_ext: str, max_length: int | None
    ) -> str:
        if max_length is None or len(name) <= max_length:
            return name
        truncation = len(name) - max_length
        file_root = file_root[:-truncation]
        if not file_root:
            raise SuspiciousFileOperation(
                f'Storage can not fit "{name}" into max_length={max_length}; make the file '
                f"field's max_length larger or the name shorter."
            )
        return os.path.join(dir_name, file_root + file_ext)

    def generate_filename(self, filename: str) -> str:
        """Django's name rules, then certstore's key rules (canonical form returned).

        A file name longer than a filesystem allows passes here: Django's
        ``get_available_name`` shortens it to the field's ``max_length`` next, and ``_save``
        checks every rule again on the name that is actually written.
        """
        return self.key(super().generate_filename(filename), to_be_shortened=True)


def _resolve_certificate_storage() -> Storage:
    from django.core.files.storage import storages

    alias = storage_alias()
    configured = getattr(django_settings, "STORAGES", {}) or {}
    return storages[alias if alias in configured else "default"]


class UnconfiguredStorage(Storage):  # type: ignore[misc]
    """Stands in for a certificate storage whose configuration is invalid: every use raises
    that configuration's error.

    Why not raise at once: Django builds a ``FileField``'s storage while it imports the models,
    so a bad ``OPTIONS`` value would crash every ``manage.py`` command (a traceback, exit 1)
    before any of them could say what is wrong. This way the first use says it, and the
    commands exit 2 with the message.
    """

    def __init__(self, error: DjangoConfigError) -> None:
        self.error = error

    def _fail(self, *_args: Any, **_kwargs: Any) -> Any:
        raise DjangoConfigError(str(self.error), variable=getattr(self.error, "variable", ""))

    _open = _save = delete = exists = listdir = size = url = path = _fail
    get_accessed_time = get_created_time = get_modified_time = _fail
    generate_filename = get_available_name = get_valid_name = _fail


class LazyCertificateStorage(LazyObject):  # type: ignore[misc]
    """The ``STORAGES`` entry for certificates, looked up on first use (like ``default_storage``).

    Reset when a setting it depends on changes (``override_settings`` in tests).
    """

    def _setup(self) -> None:
        try:
            self._wrapped = _resolve_certificate_storage()
        except DjangoConfigError as err:
            self._wrapped = UnconfiguredStorage(err)


certificates_storage: Storage = LazyCertificateStorage()


def certificate_storage() -> Storage:
    """The storage for a certificate ``FileField``: ``FileField(storage=certificate_storage)``.

    It is the ``STORAGES`` entry named by ``CERTSTORE_STORAGE_ALIAS`` (default
    ``"certificates"``), or ``"default"`` when that entry is not configured, so a site moves
    from ``FileSystemStorage`` (or django-storages) to certstore by editing ``STORAGES`` alone.
    Migrations record this function, not a storage instance.
    """
    return certificates_storage


#: Settings whose change (``override_settings``) invalidates a built certificate storage.
_WATCHED_PREFIXES = ("AWS_", "CERTSTORE_", "MEDIA_")
_WATCHED_SETTINGS = ("STORAGES", "FILE_UPLOAD_PERMISSIONS", "FILE_UPLOAD_DIRECTORY_PERMISSIONS")


def _reset_on_setting_change(*, setting: str, **_: Any) -> None:
    if setting not in _WATCHED_SETTINGS and not setting.startswith(_WATCHED_PREFIXES):
        return
    from django.core.files.storage import storages

    cached = getattr(storages, "_storages", {})
    for alias in [a for a, s in cached.items() if isinstance(s, CertificateS3Storage)]:
        del cached[alias]
    certificates_storage._wrapped = empty


setting_changed.connect(_reset_on_setting_change, dispatch_uid="certstore-certificate-storage")
