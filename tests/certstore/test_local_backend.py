from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore.backends import LocalBackend
from certstore.errors import InvalidKeyError, KeyConflictError, ObjectNotFoundError, StorageError


def test_save_open_info_delete(media_root: Path) -> None:
    backend = LocalBackend(media_root)
    saved = backend.save("2024/Curaçao/東京 Δ.pdf", b"%PDF-1.4 x")
    assert saved.size == 10
    assert backend.exists("2024/Curaçao/東京 Δ.pdf")
    with backend.open("2024/Curaçao/東京 Δ.pdf") as handle:
        assert handle.read() == b"%PDF-1.4 x"
    assert backend.info("2024/Curaçao/東京 Δ.pdf").size == 10
    assert backend.sha256("2024/Curaçao/東京 Δ.pdf") == saved.sha256
    assert set(backend.times("2024/Curaçao/東京 Δ.pdf")) == {"modified", "accessed", "created"}
    assert backend.url("a b.pdf") == "/media/a%20b.pdf"
    backend.delete("2024/Curaçao/東京 Δ.pdf")
    backend.delete("2024/Curaçao/東京 Δ.pdf")
    assert not backend.exists("2024/Curaçao/東京 Δ.pdf")
    with pytest.raises(ObjectNotFoundError):
        backend.open("2024/Curaçao/東京 Δ.pdf")


def test_streams_are_saved_in_chunks(media_root: Path) -> None:
    backend = LocalBackend(media_root)
    payload = os.urandom(3 * 1024 * 1024 + 7)
    saved = backend.save("big.pdf", io.BytesIO(payload))
    assert saved.size == len(payload)
    assert (media_root / "big.pdf").read_bytes() == payload


class ExplodingReader(io.RawIOBase):
    """Delivers some bytes, then fails, like a client that disconnects mid-upload."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise ConnectionResetError("client went away")
        return b"x" * 1024


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(media_root: Path) -> None:
    backend = LocalBackend(media_root)
    backend.save("a.pdf", b"old")
    with pytest.raises(StorageError) as info:
        backend.save("a.pdf", ExplodingReader())  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert (media_root / "a.pdf").read_bytes() == b"old"
    assert sorted(p.name for p in media_root.iterdir()) == ["a.pdf"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test; the old one comes back after it."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def test_files_are_created_like_any_new_file(media_root: Path, umask: Any) -> None:
    """666 less the umask (a web server serving the media root as another user can read
    them), not the 600 of a private temporary file."""
    backend = LocalBackend(media_root)
    umask(0o022)
    backend.save("open/a.pdf", b"a")
    umask(0o027)
    backend.save("group/b.pdf", b"b")
    assert _mode(media_root / "open" / "a.pdf") == 0o644
    assert _mode(media_root / "group" / "b.pdf") == 0o640
    assert _mode(media_root / "open") == 0o755


def test_file_mode_is_exact_whatever_the_umask(media_root: Path, umask: Any) -> None:
    backend = LocalBackend(media_root, file_mode=0o664)
    umask(0o077)
    backend.save("a.pdf", b"first")
    assert _mode(media_root / "a.pdf") == 0o664
    (media_root / "a.pdf").chmod(0o600)
    backend.save("a.pdf", b"second")  # an overwrite is a new file: the mode again
    assert _mode(media_root / "a.pdf") == 0o664
    assert (media_root / "a.pdf").read_bytes() == b"second"
    assert sorted(p.name for p in media_root.iterdir()) == ["a.pdf"]


def test_directory_mode_is_given_to_every_folder_it_creates(media_root: Path, umask: Any) -> None:
    (media_root / "old").mkdir(mode=0o755)
    backend = LocalBackend(media_root, directory_mode=0o750)
    umask(0o077)
    backend.save("old/new/deeper/a.pdf", b"a")
    assert _mode(media_root / "old") == 0o755, "an existing folder is left as it is"
    assert _mode(media_root / "old" / "new") == 0o750
    assert _mode(media_root / "old" / "new" / "deeper") == 0o750
    (media_root / "file").write_bytes(b"x")
    with pytest.raises(KeyConflictError):
        backend.save("file/below/a.pdf", b"b")


def test_the_router_built_from_settings_writes_with_the_configured_modes(
    media_root: Path, umask: Any
) -> None:
    from certstore import CertificateStorage, Settings

    env = {
        "CERTSTORE_MEDIA_ROOT": str(media_root),
        "CERTSTORE_FILE_MODE": "0640",
        "CERTSTORE_DIRECTORY_MODE": "0710",
    }
    storage = CertificateStorage.from_settings(Settings.from_env(env))
    umask(0o002)
    storage.save("t/a.pdf", b"%PDF")
    assert _mode(media_root / "t" / "a.pdf") == 0o640
    assert _mode(media_root / "t") == 0o710


def test_unwritable_root_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    backend = LocalBackend(blocker)
    with pytest.raises(StorageError) as info:
        backend.save("a.pdf", b"x")
    assert info.value.key == "a.pdf"
    assert info.value.backend == "local"


@pytest.mark.parametrize("key", ["../escape.pdf", "/abs.pdf", "a\\b.pdf", "a\x00.pdf"])
def test_never_escapes_the_root(media_root: Path, key: str) -> None:
    backend = LocalBackend(media_root)
    with pytest.raises(InvalidKeyError):
        backend.save(key, b"x")
    assert not (media_root.parent / "escape.pdf").exists()


def test_folders_are_not_certificates(media_root: Path) -> None:
    backend = LocalBackend(media_root)
    backend.save("a/b.pdf", b"x")
    assert not backend.exists("a")
    with pytest.raises(ObjectNotFoundError):
        backend.open("a")


def test_free_ratio(media_root: Path) -> None:
    ratio = LocalBackend(media_root).free_ratio()
    assert ratio is not None and 0 < ratio <= 1
    assert LocalBackend(media_root / "missing").free_ratio() is None
