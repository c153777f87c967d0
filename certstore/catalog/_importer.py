"""``certstore catalog import``: walk a media root and record every certificate file.

Streaming: folders are walked with ``os.scandir`` one folder at a time (entries sorted, so ids
follow a stable order), files are hashed in 1 MiB chunks, and rows are written in batches, so
memory stays flat whatever the size of the tree.

Each file is read once for two digests: the SHA-256 the catalog identifies content by, and the
MD5 of the same bytes, which is what S3 returns as the ETag of a single-part upload. With both
recorded, the backfill proves each upload by hashing the file once (SHA-256, against the
catalog) and comparing the server's ETag with the recorded MD5. A row recorded without an MD5
(a catalog from before schema version 2) gets it on the next import, if its content is unchanged.

Policy for a file whose size or SHA-256 differs from its row ("changed"): it is reported, never
silently overwritten, because the row may describe a copy already verified in S3. With
``update_changed=True`` the row takes the new size and hash and its migration state is cleared,
so the next backfill uploads the new content.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from certstore.catalog._records import check_sql_int, whole_number
from certstore.catalog._store import Catalog, NewCertificate
from certstore.errors import ConfigError, InvalidKeyError
from certstore.keys import join_prefix, normalize_key

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: Changed/invalid entries listed in full in a report (the counts are always exact).
MAX_DETAILS = 100


def file_digests(path: str | os.PathLike[str]) -> tuple[int, str, str]:
    """(size, SHA-256 hex, MD5 hex) of a file, streamed once."""
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()


TournamentRule = Callable[[str], int | None]


def tournament_rule(spec: str | None) -> TournamentRule | None:
    """Parse ``--tournament-id-from``: ``segment:N`` (the N-th folder, 1-based, must be a
    whole number) or ``regex:PATTERN`` (first group must be a whole number)."""
    if not spec:
        return None
    kind, _, arg = spec.partition(":")
    if kind == "segment":
        try:
            index = int(arg)
        except ValueError:
            index = 0
        if index < 1:
            raise ConfigError(
                f"--tournament-id-from {spec!r}: segment:N needs N >= 1",
                variable="--tournament-id-from",
                value=spec,
            )

        def by_segment(key: str) -> int | None:
            parts = key.split("/")[:-1]
            if len(parts) < index:
                return None
            return whole_number(parts[index - 1])

        return by_segment
    if kind == "regex":
        try:
            pattern = re.compile(arg)
        except re.error as err:
            raise ConfigError(
                f"--tournament-id-from {spec!r}: bad regex: {err}",
                variable="--tournament-id-from",
                value=spec,
            ) from err
        if pattern.groups < 1:
            raise ConfigError(
                f"--tournament-id-from {spec!r}: the regex needs one group",
                variable="--tournament-id-from",
                value=spec,
            )

        def by_regex(key: str) -> int | None:
            match = pattern.search(key)
            return whole_number(match.group(1)) if match else None

        return by_regex
    raise ConfigError(
        f"--tournament-id-from {spec!r}: use segment:N or regex:PATTERN",
        variable="--tournament-id-from",
        value=spec,
    )


@dataclass
class ImportReport:
    """What an import found. ``changed`` lists up to :data:`MAX_DETAILS` entries."""

    root: str
    scanned: int = 0
    added: int = 0
    unchanged: int = 0
    changed: int = 0
    updated: int = 0
    invalid: int = 0
    bytes_added: int = 0
    #: Unchanged rows that had no MD5 recorded (older catalogs) and now have one.
    md5_recorded: int = 0
    changed_details: list[dict[str, object]] = field(default_factory=list)
    invalid_details: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return dict(self.__dict__)


def walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every regular file under ``root``, depth first.

    Hidden entries (names starting with ``.``, which includes the local backend's
    ``.tmp-*.part`` files of writes in progress) and symlinks are skipped.
    """
    stack: list[tuple[str, Path]] = [("", root)]
    while stack:
        rel, folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                names = sorted(
                    (e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False))
                    for e in entries
                )
        except OSError as err:
            logger.warning("cannot read folder %s: %s", folder, err)
            continue
        subdirs = []
        for name, is_dir, is_file in names:
            if name.startswith("."):
                continue
            child_rel = f"{rel}/{name}" if rel else name
            if is_dir:
                subdirs.append((child_rel, folder / name))
            elif is_file:
                yield child_rel, folder / name
        stack.extend(reversed(subdirs))


def import_tree(
    catalog: Catalog,
    root: str | os.PathLike[str],
    *,
    tournament_id: int | None = None,
    tournament_from: TournamentRule | None = None,
    update_changed: bool = False,
    batch_size: int = 500,
    key_prefix: str = "",
) -> ImportReport:
    """Record every file under ``root`` in ``catalog`` (see the module docstring).

    ``key_prefix`` is the bucket prefix the keys will be uploaded under: a key too long with
    it is not importable (it could never be uploaded).
    """
    base = Path(root)
    if not base.is_dir():
        raise ConfigError(f"{str(base)!r} is not a folder", variable="DIR", value=str(base))
    check_sql_int("--tournament-id", tournament_id)
    report = ImportReport(root=str(base))
    pending: list[tuple[str, int, str, str]] = []

    def flush() -> None:
        existing = catalog.find_many([key for key, _, _, _ in pending])
        new_rows = []
        md5_missing: list[tuple[int, str, str]] = []
        for key, size, sha, md5 in pending:
            row = existing.get(key)
            if row is None:
                tid = tournament_id
                if tid is None and tournament_from is not None:
                    tid = tournament_from(key)
                new_rows.append(NewCertificate(key, size, sha, tournament_id=tid, md5=md5))
                report.bytes_added += size
            elif row.size == size and row.sha256 == sha:
                report.unchanged += 1
                if row.md5 is None:
                    md5_missing.append((row.id, sha, md5))
            else:
                report.changed += 1
                if len(report.changed_details) < MAX_DETAILS:
                    report.changed_details.append(
                        {
                            "id": row.id,
                            "key": key,
                            "catalog_size": row.size,
                            "local_size": size,
                            "catalog_sha256": row.sha256,
                            "local_sha256": sha,
                            "was_migrated": row.migrated,
                        }
                    )
                if update_changed:
                    catalog.update_content(row.id, size=size, sha256=sha, md5=md5)
                    report.updated += 1
        report.added += catalog.add_many(new_rows)
        catalog.record_md5(md5_missing)
        report.md5_recorded += len(md5_missing)
        pending.clear()

    for rel, path in walk_files(base):
        report.scanned += 1
        try:
            key = normalize_key(rel)
            join_prefix(key_prefix, key)
        except InvalidKeyError as err:
            report.invalid += 1
            if len(report.invalid_details) < MAX_DETAILS:
                report.invalid_details.append({"path": rel, "reason": str(err)})
            continue
        try:
            size, sha, md5 = file_digests(path)
        except OSError as err:
            report.invalid += 1
            if len(report.invalid_details) < MAX_DETAILS:
                report.invalid_details.append({"path": rel, "reason": f"unreadable: {err}"})
            continue
        pending.append((key, size, sha, md5))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return report
