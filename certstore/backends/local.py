"""The filesystem backend: the authoritative copy until phase 3.

Writes are atomic and durable (temp file in the same folder, fsync, ``os.replace``, fsync of the
folder), so a crash or a failed write never leaves a half-written certificate where the old one
was, and no partial file stays behind. Every path goes through :func:`certstore.keys.resolve_under`,
so no key reaches outside the root.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from certstore.backends.base import Content, ObjectInfo, SavedObject
from certstore.errors import InvalidKeyError, KeyConflictError, ObjectNotFoundError, StorageError
from certstore.keys import normalize_key, resolve_under

try:
    import fcntl
except ImportError:  # not POSIX: the in-process lock below still serializes threads
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: The folder under the media root that holds the write locks (hidden: ``catalog import``
#: skips it); no certificate key may start with it.
LOCKS_DIR = ".certstore-locks"
#: Keys are spread over this many lock files: bounded on disk, and two unrelated keys wait
#: for each other only when they land on the same one (1 in 256).
LOCK_STRIPES = 256
_THREAD_LOCKS = [threading.Lock() for _ in range(LOCK_STRIPES)]


def _create_temp(folder: Path, mode: int | None) -> tuple[int, str]:
    """A new empty hidden file in ``folder``, open for writing, created as any new file is (666
    less the umask) or with exactly ``mode``, before a byte of the certificate is in it.

    Not :func:`tempfile.mkstemp`: its 600 made every saved certificate unreadable to a web
    server that serves the media root as another user (Django's own storage creates 644).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = os.path.join(folder, f".tmp-{secrets.token_hex(8)}.part")
        try:
            fd = os.open(name, flags, 0o666)
        except FileExistsError:
            continue  # another writer drew the same name: draw again
        if mode is not None:
            try:
                os.chmod(name, mode)  # exactly, whatever the umask
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(name)
                raise
        return fd, name
    raise OSError(f"no free temporary file name in {folder}")


def _make_folders(folder: Path, mode: int | None) -> None:
    """``mkdir -p folder``; with ``mode``, every folder it creates gets exactly that mode,
    whatever the umask (``mkdir``'s own mode argument is masked, and reaches the last folder
    only)."""
    if mode is None:
        folder.mkdir(parents=True, exist_ok=True)
        return
    missing = []
    current = folder
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            if path.is_dir():
                continue  # another writer made it first: its mode is that writer's business
            raise
        os.chmod(path, mode)


def iter_chunks(content: Content, chunk_size: int = CHUNK):  # type: ignore[no-untyped-def]
    """Yield ``content`` in chunks, whether it is bytes or a binary file object."""
    if isinstance(content, bytes | bytearray | memoryview):
        view = memoryview(content)
        for start in range(0, len(view), chunk_size):
            yield view[start : start + chunk_size]
        return
    while True:
        chunk = content.read(chunk_size)
        if not chunk:
            return
        if isinstance(chunk, str):
            raise TypeError("certificate content must be bytes, got text")
        yield chunk


class LocalBackend:
    """Certificates as files under ``root``."""

    name = "local"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        base_url: str = "/media/",
        fsync: bool = True,
        file_mode: int | None = None,
        directory_mode: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.fsync = fsync
        #: Permission bits of the files it writes; None: 666 less the process's umask.
        self.file_mode = file_mode
        #: Permission bits of the folders it creates; None: 777 less the process's umask.
        self.directory_mode = directory_mode

    def path(self, key: str) -> Path:
        """The file that holds ``key`` (checked to be inside the root)."""
        canonical = normalize_key(key)
        if canonical.split("/", 1)[0] == LOCKS_DIR:
            raise InvalidKeyError(
                f"invalid key {key!r}: {LOCKS_DIR}/ is reserved for certstore's write locks",
                key=key,
                reason="reserved",
            )
        return resolve_under(self.root, canonical)

    @contextlib.contextmanager
    def lock(self, key: str, *, create: bool = True) -> Iterator[None]:
        """Hold the write lock of ``key``: threads and processes on this host that write or
        delete the same key take turns (an advisory ``flock`` on one of
        :data:`LOCK_STRIPES` files under :data:`LOCKS_DIR`).

        Why: the router writes the local file and then its S3 shadow; two writers of one key
        interleaving those steps would leave S3 holding the other writer's bytes.
        ``create=False`` only uses a lock file the router already made (a
        :class:`StorageError` otherwise): a batch job running as another user must not leave
        lock files the web server's user cannot open.
        """
        self.path(key)  # a key that may not be written here takes no lock (and creates nothing)
        stripe = hashlib.sha256(normalize_key(key).encode("utf-8")).digest()[0] % LOCK_STRIPES
        with _THREAD_LOCKS[stripe]:
            if fcntl is None:
                yield
                return
            folder = self.root / LOCKS_DIR
            try:
                if create:
                    folder.mkdir(parents=True, exist_ok=True)
                flags = os.O_RDWR | os.O_CREAT if create else os.O_RDWR
                fd = os.open(folder / f"{stripe:02x}.lock", flags, 0o644)
            except OSError as err:
                raise StorageError(
                    f"cannot take the write lock for {key!r} under {folder}: {err}",
                    key=key,
                    backend=self.name,
                ) from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def save(
        self,
        key: str,
        content: Content,
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> SavedObject:
        canonical = normalize_key(key)
        target = self.path(canonical)
        if target.is_dir():
            raise KeyConflictError(
                f"cannot write {canonical!r}: a folder of that name exists under {self.root}",
                key=canonical,
                backend=self.name,
            )
        try:
            _make_folders(target.parent, self.directory_mode)
            fd, temp_name = _create_temp(target.parent, self.file_mode)
        except (FileExistsError, NotADirectoryError) as err:
            raise KeyConflictError(
                f"cannot write {canonical!r}: one of its folders is a file under {self.root}",
                key=canonical,
                backend=self.name,
            ) from err
        except OSError as err:
            raise StorageError(
                f"cannot write {canonical!r} under {self.root}: {err}",
                key=canonical,
                backend=self.name,
            ) from err
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in iter_chunks(content):
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(temp_name, target)
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            if isinstance(err, OSError):
                raise StorageError(
                    f"cannot write {canonical!r} under {self.root}: {err}",
                    key=canonical,
                    backend=self.name,
                ) from err
            raise
        if self.fsync:
            self._fsync_dir(target.parent)
        computed = digest.hexdigest()
        if sha256 is not None and sha256 != computed:
            logger.warning(
                "saved %r: caller's sha256 %s differs from content's %s",
                canonical,
                sha256,
                computed,
            )
        return SavedObject(canonical, size, computed)

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def open(self, key: str) -> BinaryIO:
        path = self.path(key)
        try:
            return path.open("rb")
        except FileNotFoundError as err:
            raise ObjectNotFoundError(
                f"no local file for {key!r}", key=key, backend=self.name
            ) from err
        except IsADirectoryError as err:
            raise ObjectNotFoundError(
                f"{key!r} is a folder, not a certificate", key=key, backend=self.name
            ) from err
        except OSError as err:
            raise StorageError(f"cannot read {key!r}: {err}", key=key, backend=self.name) from err

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def info(self, key: str) -> ObjectInfo:
        path = self.path(key)
        try:
            stat = path.stat()
        except FileNotFoundError as err:
            raise ObjectNotFoundError(
                f"no local file for {key!r}", key=key, backend=self.name
            ) from err
        return ObjectInfo(
            normalize_key(key), stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)
        )

    def times(self, key: str) -> dict[str, datetime]:
        """Modified, accessed and (where the filesystem knows it) created times."""
        path = self.path(key)
        try:
            stat = path.stat()
        except FileNotFoundError as err:
            raise ObjectNotFoundError(
                f"no local file for {key!r}", key=key, backend=self.name
            ) from err
        created = getattr(stat, "st_birthtime", stat.st_ctime)
        return {
            "modified": datetime.fromtimestamp(stat.st_mtime, UTC),
            "accessed": datetime.fromtimestamp(stat.st_atime, UTC),
            "created": datetime.fromtimestamp(created, UTC),
        }

    def sha256(self, key: str) -> str:
        """SHA-256 hex of the stored file, streamed."""
        digest = hashlib.sha256()
        with self.open(key) as handle:
            for chunk in iter_chunks(handle):
                digest.update(chunk)
        return digest.hexdigest()

    def url(self, key: str, *, expires: int | None = None, download_name: str | None = None) -> str:
        return self.base_url + quote(normalize_key(key))

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as err:
            raise StorageError(f"cannot delete {key!r}: {err}", key=key, backend=self.name) from err

    def free_ratio(self) -> float | None:
        """Free share of the volume holding the root (None when it does not exist yet)."""
        try:
            usage = shutil.disk_usage(self.root)
        except OSError:
            return None
        return usage.free / usage.total if usage.total else None
