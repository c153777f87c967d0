"""Object-key rules shared by every backend.

A key is a relative, slash-separated path. The same key names the local file (under the media
root) and the S3 object (under the key prefix), so a key that could climb out of the media root,
or that S3 would refuse, is rejected here, before any backend sees it. UTF-8 names
(``Curaçao``, ``東京``, ``Δ``) are legal and are never rewritten: what is saved is what is read.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from certstore.errors import InvalidKeyError

#: S3's own limit on a key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
#: The longest file or folder name the local filesystems in use take (NAME_MAX), in bytes: a
#: key the media root cannot hold is refused here, not by an ``OSError`` deep in a write.
MAX_SEGMENT_BYTES = 255

#: NUL, the other C0 and C1 control characters, DEL, and backslash.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def _reject(key: object, reason: str, detail: str) -> InvalidKeyError:
    return InvalidKeyError(f"invalid key {key!r}: {detail}", key=key, reason=reason)


def normalize_key(
    key: str, *, max_bytes: int = MAX_KEY_BYTES, max_segment_bytes: int | None = MAX_SEGMENT_BYTES
) -> str:
    """Return the canonical form of ``key`` or raise :class:`InvalidKeyError`.

    Canonical means: empty and ``.`` segments dropped (``a//./b`` is ``a/b``). Anything that
    could be read as a different location is refused rather than repaired: ``..`` segments,
    absolute paths, drive letters, backslashes (a separator on Windows), NUL and other control
    characters (C0, DEL and C1), keys longer than ``max_bytes`` UTF-8 bytes, and file or folder
    names longer than ``max_segment_bytes`` (None: not checked, for a name that is about to be
    shortened).
    """
    if not isinstance(key, str):
        raise _reject(key, "type", f"expected a string, got {type(key).__name__}")
    if key == "":
        raise _reject(key, "empty", "a key cannot be empty")
    forbidden = _FORBIDDEN.search(key)
    if forbidden is not None:
        char = forbidden.group()
        if char == "\x00":
            raise _reject(key, "nul", "contains a NUL byte")
        if char == "\\":
            raise _reject(key, "backslash", "contains a backslash; use '/' between folders")
        raise _reject(key, "control", "contains a control character")
    if key.startswith("/"):
        raise _reject(key, "absolute", "is an absolute path; keys are relative to the root")
    if len(key) >= 2 and key[1] == ":" and key[0].isalpha():
        raise _reject(key, "absolute", "starts with a drive letter")
    if key.endswith("/"):
        raise _reject(key, "folder", "ends with '/', which names a folder, not an object")
    segments = key.split("/")
    if "" in segments or "." in segments:
        segments = [segment for segment in segments if segment not in ("", ".")]
    if ".." in segments:
        raise _reject(key, "parent", "contains a '..' segment")
    if not segments:
        raise _reject(key, "empty", "has no name once '.' and empty segments are removed")
    canonical = "/".join(segments)
    try:
        size = len(canonical.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise _reject(key, "encoding", "is not valid Unicode (lone surrogate)") from err
    if size > max_bytes:
        raise _reject(key, "too_long", f"is {size} UTF-8 bytes; the limit is {max_bytes}")
    if max_segment_bytes is not None and size > max_segment_bytes:
        for segment in segments:
            length = len(segment.encode("utf-8"))
            if length > max_segment_bytes:
                raise _reject(
                    key,
                    "segment_too_long",
                    f"has a name of {length} UTF-8 bytes; a file or folder name is at most "
                    f"{max_segment_bytes}",
                )
    return canonical


def is_valid_key(key: object) -> bool:
    """True when :func:`normalize_key` accepts ``key``."""
    try:
        normalize_key(key)  # type: ignore[arg-type]
    except InvalidKeyError:
        return False
    return True


def resolve_under(root: str | os.PathLike[str], key: str) -> Path:
    """Return the local path for ``key`` under ``root``, refusing anything outside it.

    The key rules already make escape impossible for plain paths; the second check catches a
    symlink inside the root that points outside it. Resolves ``root`` on every call; code that
    resolves many keys under one root keeps a :class:`MediaRoot`.
    """
    return MediaRoot(root).resolve(key)


class MediaRoot:
    """A media root resolved once, for resolving many keys under it (the backfill: one per
    row).

    Same guarantee as :func:`resolve_under`, cheaper: instead of ``realpath`` over the whole
    path (an ``lstat`` for every component from ``/`` down, the root's included), only the
    components below the root are ``lstat``-ed, and the full ``realpath`` check runs only when
    one of them is a symlink. The root itself is resolved when the object is made: re-pointing
    a symlinked media root takes effect for the next ``MediaRoot``.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.base = os.path.realpath(root)
        # A realpath has no trailing separator (except "/" itself) and a canonical key no
        # empty segment, so plain concatenation is the join (one key per catalog row).
        self._prefix = self.base.rstrip(os.sep) + os.sep

    def resolve(self, key: str) -> Path:
        """The path of ``key`` under the root; :class:`InvalidKeyError` for a bad key or one
        whose path leaves the root through a symlink."""
        canonical = normalize_key(key)
        path = self._prefix + canonical
        start = len(self._prefix)
        while True:
            end = path.find("/", start)
            current = path if end < 0 else path[:end]
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                break  # nothing below a missing component can be a symlink
            except OSError:
                self._check_contained(key, path)
                break
            if stat.S_ISLNK(mode):
                self._check_contained(key, path)
                break
            if end < 0:
                break
            start = end + 1
        return Path(path)

    def _check_contained(self, key: str, path: str) -> None:
        resolved = os.path.realpath(path)
        if resolved != self.base and not resolved.startswith(self._prefix):
            raise _reject(key, "escape", f"resolves outside the media root {self.base!r}")


def join_prefix(prefix: str, key: str) -> str:
    """The S3 object key for ``key`` under ``prefix`` (checked against S3's length limit)."""
    canonical = normalize_key(key)
    full = f"{prefix}{canonical}" if prefix else canonical
    size = len(full.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise _reject(
            key, "too_long", f"is {size} UTF-8 bytes with the prefix; the limit is {MAX_KEY_BYTES}"
        )
    return full


def normalize_prefix(prefix: str) -> str:
    """A key prefix in canonical form: empty, or a valid key followed by exactly one '/'."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    return normalize_key(stripped) + "/"
