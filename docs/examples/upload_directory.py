"""Upload every file under a directory with verification, through ``certstore.transfer``.

The example ``docs/transfer.md`` refers to; ``tests/certstore/test_transfer.py`` runs it
against the moto server. The backfill does the same with rows from its catalog instead of a
directory walk (the SHA-256 there is the one recorded at import, not one computed just now).

    python docs/examples/upload_directory.py DIRECTORY   # settings from the environment
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

from certstore.config import Settings
from certstore.transfer import UploadItem, UploadResult, make_uploader


def items_under(root: Path) -> Iterator[UploadItem]:
    """One item per file; the key is the path relative to ``root``."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield UploadItem(
            path.relative_to(root).as_posix(), path, hashlib.sha256(data).hexdigest(), len(data)
        )


def upload_directory(settings: Settings, root: Path, *, workers: int = 16) -> list[UploadResult]:
    """Upload ``root``; one result per file (``ok`` only with a server-proven copy)."""
    uploader = make_uploader(settings, workers=workers)
    try:
        uploader.check_bucket()
        return list(uploader.upload(items_under(root)))
    finally:
        uploader.close()


def main(argv: list[str]) -> int:
    results = upload_directory(Settings.from_env(), Path(argv[0]))
    for result in results:
        status = f"ok ({result.verified_by})" if result.ok else f"{result.reason}: {result.detail}"
        print(f"{result.item.key}: {status}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
