"""Object-key rules shared by every backend.

A key is a relative, slash-separated path. The same key names the local file (under the media
root) and the S3 object (under the key prefix), so a key that could climb out of the media root,
or that S3 would refuse, is rejected here, before any backend sees it. UTF-8 names
(``Curaçao``, ``東京``, ``Δ``) are legal and are never rewritten: what is saved is what is read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from certstore.errors import InvalidKeyError

#: S3's own limit on a key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")


def _reject(key: object, reason: str, detail: str) -> InvalidKeyError:
    return InvalidKeyError(f"invalid key {key!r}: {detail}", key=key, reason=reason)


def normalize_key(key: str, *, max_bytes: int = MAX_KEY_BYTES) -> str:
    """Return the canonical form of ``key`` or raise :class:`InvalidKeyError`.

    Canonical means: empty and ``.`` segments dropped (``a//./b`` is ``a/b``). Anything that
    could be read as a different location is refused rather than repaired: ``..`` segments,
    absolute paths, drive letters, backslashes (a separator on Windows), NUL and other control
    characters, and keys longer than ``max_bytes`` UTF-8 bytes.
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
    symlink inside the root that points outside it.
    """
    canonical = normalize_key(key)
    base = Path(root).resolve()
    path = base.joinpath(*canonical.split("/"))
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise _reject(key, "escape", f"resolves outside the media root {str(base)!r}")
    return path


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
