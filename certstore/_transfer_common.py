"""What every transfer engine does the same way: read and hash local files, judge the proof.

The rule that makes a copy trustworthy lives here once: the local bytes must hash to the
SHA-256 the catalog recorded (else ``local_changed``, nothing is uploaded), and the server must
say, in its own words, that it stored those bytes -- the ETag of a single-part upload is the MD5
the server computed, the ETag of a multipart upload is the MD5 of the part MD5s plus ``-N``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import mimetypes
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from certstore._transfer_types import (
    REASON_LOCAL_CHANGED,
    REASON_LOCAL_MISSING,
    VERIFIED_CHECKSUM_SHA256,
    VERIFIED_ETAG_MD5,
    VERIFIED_HEAD,
    UploadItem,
    UploadResult,
)
from certstore.errors import CertstoreError

logger = logging.getLogger(__name__)

#: Files up to this size are read with one ``read`` and sent from memory; bigger single-part
#: files are hashed in a first pass and streamed from disk in a second (bounded memory).
READ_WHOLE_LIMIT = 8 * 1024 * 1024
#: Chunk size for streaming hashes: large enough that hashlib drops the GIL.
HASH_CHUNK = 1024 * 1024
#: Default multipart part size (S3's minimum is 5 MiB for every part but the last).
DEFAULT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024

_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


def is_plain_md5(text: str) -> bool:
    """True for 32 lower-case hex digits: a single-part ETag, i.e. the MD5 of the content."""
    return bool(_PLAIN_MD5.match(text))


def conditional_unsupported(code: str | None, status: int | None) -> bool:
    """Did the server refuse a conditional PUT (``If-None-Match: *`` or ``If-Match``) itself
    (older S3 look-alikes)?"""
    return code == "NotImplemented" or status == 501


#: ``(header, on the completion?)`` -> the :class:`ConditionalPuts` flag that still sends it.
_CONDITION_FLAGS = {
    ("If-Match", False): "_if_match",
    ("If-None-Match", False): "_if_none_match",
    ("If-Match", True): "_completion_if_match",
    ("If-None-Match", True): "_completion_if_none_match",
}


class ConditionalPuts:
    """Which conditional PUTs an uploader still sends, and how it gives one up; both engines
    inherit it.

    Why: an endpoint that cannot make a PUT conditional says so (501) only when asked, so
    each uploader learns it at run time, and both engines must learn it the same way.
    """

    #: How the engine treats an object already in S3 (see ``EXISTING_MODES``).
    existing: str
    #: Stale copies are replaced with ``If-Match``, and absent ones created with
    #: ``If-None-Match: *``, until the endpoint refuses them (501).
    _if_match: bool = True
    _if_none_match: bool = True
    #: The same two conditions on CompleteMultipartUpload, learned apart: an endpoint may
    #: support them on PUT and not there (or the other way round).
    _completion_if_match: bool = True
    _completion_if_none_match: bool = True

    def _fall_back_to_head(self, code: str | None) -> None:
        """The endpoint answered 501 to ``If-None-Match: *`` on PUT: check for existing
        objects with a HEAD before each PUT from now on (``existing="head"``)."""
        logger.warning(
            "the endpoint refuses conditional PUTs (%s); checking for existing objects with "
            "HEAD from now on",
            code,
        )
        self.existing = "head"
        self._if_none_match = False

    def _drop_condition(self, header: str, code: str | None, *, completion: bool = False) -> None:
        """The endpoint answered 501 to ``header`` (``If-Match`` or ``If-None-Match``) on PUT,
        or on CompleteMultipartUpload with ``completion``: send those without it from now on
        (the other kind keeps its conditions)."""
        if completion:
            operation, writes = "CompleteMultipartUpload", "completions"
        else:
            operation, writes = "PUT", "PUTs"
        logger.warning(
            "the endpoint refuses %s on %s (%s); sending %s without it from now on",
            header,
            operation,
            code,
            writes,
        )
        setattr(self, _CONDITION_FLAGS[header, completion], False)


#: How many times an engine judges a differing S3 copy and tries to replace it before giving
#: up with ``s3_error``: each new round means the object changed again between the engine's
#: HEAD and its PUT.
REPLACE_ROUNDS = 3


@dataclass(frozen=True)
class StaleCopy:
    """S3 holds other bytes under the key, and the local file still holds the catalogued ones.

    ``etag`` is the stale copy's ETag as the HEAD returned it: the overwrite is sent with
    ``If-Match: <etag>``, so it replaces exactly the copy that was judged. Why: between that
    HEAD and the PUT a client may save a newer version through the router (local file, then
    S3); an unconditional PUT would put the old certificate back over it. With ``If-Match``
    S3 refuses (412) and the engine judges again, and then finds the local file changed.
    """

    etag: str | None


def deleted_during_upload(item: UploadItem) -> bool:
    """Is the local file gone now that its upload has finished?

    Why: the router deletes a certificate locally first, then in S3. If that happens after
    the engine read the file and before its PUT landed, the PUT puts the deleted certificate
    back into S3, where reads go first from phase 2 on. Checked after the PUT: a delete that
    starts later removes the S3 copy itself. Only "no such file" counts: an I/O or permission
    error says nothing about a delete, and must not take a live certificate's copy back.
    """
    try:
        os.lstat(item.path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def take_back(
    item: UploadItem, media_root: str, client: Any, bucket: str, object_key: str, etag: Any
) -> LocalFileProblem:
    """Undo the upload of a file that was deleted meanwhile; returns the problem to report.

    Holds the router's write lock of the key when ``item.path`` is the key's file under
    ``media_root`` (the router holds it across its local-then-S3 save or delete), and looks
    at the file again under it: re-created meanwhile, the router's new save stands
    (``local_changed``); still gone, the router's delete on this host is complete on both
    sides. The delete itself is always conditional on this upload's ETag (the lock does not
    reach other hosts), and is left undone when the server cannot make it conditional.
    """
    with _router_lock(item, media_root):
        if not deleted_during_upload(item):
            return _changed(
                item,
                "re-created while it was being uploaded (a client saved it again); the new "
                "save is left as it is",
            )
        outcome = remove_uploaded(client, bucket, object_key, etag)
    logger.warning("%s was deleted during its upload: %s", item.path, outcome)
    return LocalFileProblem(
        f"local file {item.path} was deleted while it was being uploaded (a client deleted "
        f"the certificate); {outcome}",
        reason=REASON_LOCAL_MISSING,
        path=str(item.path),
    )


@contextlib.contextmanager
def _router_lock(item: UploadItem, media_root: str) -> Iterator[bool]:
    """The router's write lock of the item's key, when the item is that key's file under
    ``media_root`` and the router already made the lock file (it is never created here:
    see :meth:`LocalBackend.lock`); yields whether it is held."""
    from certstore.backends.local import LocalBackend
    from certstore.keys import normalize_key

    root = os.path.realpath(media_root)
    try:
        expected = os.path.join(root, *normalize_key(item.key).split("/"))
    except CertstoreError:
        expected = None
    if os.path.abspath(item.path) != expected:
        yield False
        return
    held = contextlib.ExitStack()
    locked = False
    try:
        held.enter_context(LocalBackend(root).lock(item.key, create=False))
        locked = True
    except (CertstoreError, OSError) as err:
        logger.warning(
            "cannot share the router's write lock for %r (%s); taking the upload back "
            "with If-Match only",
            item.key,
            err,
        )
    with held:
        yield locked


def remove_uploaded(client: Any, bucket: str, object_key: str, etag: str | None) -> str:
    """Delete the copy an engine just uploaded, only while S3 still holds that copy
    (``If-Match`` on its ETag; never unconditionally: the router's lock does not reach other
    hosts), and say what happened, for the detail."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{bucket}/{object_key}"
    by_hand = f"if the certificate is still deleted locally, delete {where} with an S3 tool"
    if not etag:
        return f"{where} was left as it is (no ETag to delete it by); {by_hand}"
    try:
        client.delete_object(Bucket=bucket, Key=object_key, IfMatch=etag)
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "PreconditionFailed" or status == 412:
            return f"{where} now holds another copy, left as it is"
        if code == "NoSuchKey" or status == 404:
            return f"{where} is already gone"
        if code == "NotImplemented" or status == 501:
            return f"{where} cannot be deleted conditionally here, left as it is; {by_hand}"
        return f"removing {where} failed ({code or status}); {by_hand}"
    except BotoCoreError as err:
        return f"removing {where} failed ({type(err).__name__}); {by_hand}"
    return f"the copy just uploaded to {where} was deleted again"


def replace_gave_up(location: str, operation: str = "PutObject") -> str:
    """The ``s3_error`` detail when every :data:`REPLACE_ROUNDS` round found a new copy."""
    return (
        f"{operation} {location} refused: the object changed again between each check and its "
        f"conditional write ({REPLACE_ROUNDS} rounds); left as it is, run the same command again"
    )


class VerifyFailed(Exception):
    """The server's answer did not prove the copy (control flow inside both engines)."""


def judge_head(
    result: UploadResult, location: str, size: object, stored_sha256: str | None
) -> UploadResult:
    """``verify_method="head"``: the object's size and stored SHA-256 must be the item's.

    The engines fetch the HEAD their own way; the judgement is this one.
    """
    item = result.item
    digest = (stored_sha256 or "").lower()
    if size != item.size or digest != item.sha256.lower():
        raise VerifyFailed(
            f"{location}: HEAD shows size {size} sha256 {digest or '-'}, "
            f"expected {item.size} {item.sha256.lower()}"
        )
    return UploadResult(
        item,
        True,
        None,
        etag=result.etag,
        verified_by=VERIFIED_HEAD,
        bytes_sent=result.bytes_sent,
    )


class LocalFileProblem(CertstoreError):
    """A local file is missing, unreadable or not what the catalog recorded (internal)."""

    def __init__(self, message: str, *, reason: str, path: str) -> None:
        super().__init__(message, reason=reason, path=path)


@dataclass(frozen=True)
class LocalData:
    """A small file read whole, with both digests."""

    data: bytes
    sha256: str
    md5: str


def md5_hasher() -> hashlib._Hash:
    """MD5 for ETag comparison only (not security), so FIPS builds allow it."""
    return hashlib.md5(usedforsecurity=False)


def content_type(key: str) -> str:
    """The Content-Type stored with the object, guessed from the key's extension."""
    return _type_for_extension(os.path.splitext(key)[1].lower())


#: What certificates are stored as, answered without ``mimetypes``: its first guess reads the
#: system's mime.types files (~10 ms of a backfill's start-up) and says the same for these.
_CERTIFICATE_TYPES = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg"}


@functools.lru_cache(maxsize=256)
def _type_for_extension(extension: str) -> str:
    known = _CERTIFICATE_TYPES.get(extension)
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(f"x{extension}", strict=False)
    return guessed or "application/octet-stream"


def b64_sha256(hex_digest: str) -> str:
    """The base64 form S3 uses for ``x-amz-checksum-sha256``."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def clean_etag(etag: object) -> str | None:
    """An ETag without quotes (``None`` when absent)."""
    text = str(etag or "").strip().strip('"').lower()
    return text or None


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the concatenated part MD5s, ``-N``."""
    return f"{hashlib.md5(b''.join(part_md5s), usedforsecurity=False).hexdigest()}-{len(part_md5s)}"


def local_read_problem(item: UploadItem, err: OSError) -> LocalFileProblem:
    """What to report when the local file cannot be opened or read (``local_missing``)."""
    if isinstance(err, FileNotFoundError | NotADirectoryError):
        detail = f"local file {item.path} does not exist"
    else:
        detail = f"local file {item.path} cannot be read: {err.strerror or err}"
    return LocalFileProblem(detail, reason=REASON_LOCAL_MISSING, path=str(item.path))


def _changed(item: UploadItem, what: str) -> LocalFileProblem:
    return LocalFileProblem(
        f"local file {item.path} changed since it was catalogued: {what}",
        reason=REASON_LOCAL_CHANGED,
        path=str(item.path),
    )


def check_size(item: UploadItem, actual: int) -> None:
    """A size different from the catalog's means the file changed: no need to hash it."""
    if actual != item.size:
        raise _changed(item, f"size {actual} bytes, catalog says {item.size}")


def check_sha256(item: UploadItem, actual: str) -> None:
    """The local bytes must be the catalogued bytes."""
    if actual != item.sha256.lower():
        raise _changed(item, f"sha256 {actual}, catalog says {item.sha256.lower()}")


def confirm_unchanged(item: UploadItem) -> None:
    """Read the local file again and raise ``local_changed`` unless it still holds the
    catalogued bytes. Called before an S3 copy that differs is overwritten.

    Why: the router writes the local file before its S3 shadow, so when S3 holds something
    else, either that copy is stale (overwrite it) or a client has just saved a newer version
    -- and then the local file already holds it, and the bytes this upload read are the old
    ones. Overwriting then would put the old certificate back over the one just acknowledged.
    """
    try:
        size, sha256 = file_sha256(item.path)
    except OSError as err:
        raise local_read_problem(item, err) from err
    if size != item.size or sha256 != item.sha256.lower():
        raise _changed(
            item,
            f"now {size} bytes, sha256 {sha256} (found before overwriting the different copy "
            "in S3: a newer version was probably saved meanwhile; it is left in place)",
        )


def file_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, streamed in 1 MiB reads."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def local_size(item: UploadItem) -> int:
    """The file's size now (``local_missing`` when it is gone or not a regular file)."""
    try:
        stat = os.stat(item.path)
    except OSError as err:
        raise local_read_problem(item, err) from err
    if not _is_regular(stat.st_mode):
        raise LocalFileProblem(
            f"local path {item.path} is not a regular file",
            reason=REASON_LOCAL_MISSING,
            path=str(item.path),
        )
    return stat.st_size


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def read_whole(item: UploadItem) -> LocalData:
    """Read a small file in one go and check it against the catalog.

    One open, one fstat, one read: the size is checked before reading (a different size is
    ``local_changed`` without hashing) and there is no separate ``stat`` by path.
    """
    try:
        fd = os.open(item.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise local_read_problem(item, err) from err
    try:
        stat = os.fstat(fd)
        if not _is_regular(stat.st_mode):
            raise LocalFileProblem(
                f"local path {item.path} is not a regular file",
                reason=REASON_LOCAL_MISSING,
                path=str(item.path),
            )
        check_size(item, stat.st_size)
        # The catalogued size, no more: a file appended to since the fstat still uploads
        # exactly the bytes the catalog describes (and hashed to its SHA-256), and a file that
        # shrank comes up short and is ``local_changed``.
        data = os.read(fd, item.size) if item.size else b""
        while len(data) < item.size:
            more = os.read(fd, item.size - len(data))
            if not more:
                break
            data += more
    except OSError as err:
        raise local_read_problem(item, err) from err
    finally:
        os.close(fd)
    check_size(item, len(data))
    sha = hashlib.sha256(data).hexdigest()
    check_sha256(item, sha)
    md5 = known_md5(item) or hashlib.md5(data, usedforsecurity=False).hexdigest()
    return LocalData(data, sha, md5)


def known_md5(item: UploadItem) -> str | None:
    """The item's recorded MD5, when it has a well-formed one.

    Only meaningful once the bytes' SHA-256 matched the catalog: the MD5 was hashed from the
    same content at import, so it is the MD5 of the bytes being uploaded. A wrong recorded MD5
    cannot pass an upload that should fail: the ETag would not match it, and the object is
    reported ``verify_failed``, not marked migrated.
    """
    md5 = (item.md5 or "").lower()
    return md5 if is_plain_md5(md5) else None


def hash_file(item: UploadItem) -> tuple[str, str]:
    """Stream a file once: ``(sha256, md5)`` hex, checked against the catalog (the MD5 is the
    recorded one when the item has it, see :func:`known_md5`)."""
    recorded = known_md5(item)
    sha, md5, size = hashlib.sha256(), None if recorded else md5_hasher(), 0
    try:
        with open(item.path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                sha.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                size += len(chunk)
    except OSError as err:
        raise local_read_problem(item, err) from err
    check_size(item, size)
    check_sha256(item, sha.hexdigest())
    return sha.hexdigest(), recorded or md5.hexdigest()  # type: ignore[union-attr]


def judge_put(
    etag: object, checksum_b64: object, *, md5_hex: str, sha256_hex: str
) -> tuple[str | None, str]:
    """Did the PUT response prove the server stored our bytes? ``(verified_by, problem)``.

    The ETag of a single-part upload is the MD5 the server computed over what it received:
    that is the proof when it looks like an MD5. A server-side-encrypted object (SSE-KMS) has
    an opaque ETag; then the ``x-amz-checksum-sha256`` the server returned is the proof (AWS
    validates it and refuses the upload with ``BadDigest`` when it does not match). An echoed
    checksum is never preferred over the ETag: some S3 look-alikes (moto) echo what the client
    sent without checking it.
    """
    tag = clean_etag(etag)
    if tag and _PLAIN_MD5.match(tag):
        if tag == md5_hex:
            return VERIFIED_ETAG_MD5, ""
        return None, (
            f"server ETag {tag} != expected MD5 {md5_hex} (the MD5 the catalog recorded for "
            "this content, or the local file's when it recorded none)"
        )
    if checksum_b64:
        expected = b64_sha256(sha256_hex)
        if str(checksum_b64) == expected:
            return VERIFIED_CHECKSUM_SHA256, ""
        return None, f"server checksum-sha256 {checksum_b64} != local {expected}"
    return None, f"server ETag {tag!r} is not an MD5 and no checksum was returned"


def judge_multipart(etag: object, part_md5s: Sequence[bytes]) -> tuple[str | None, str]:
    """The multipart ETag must be the MD5 of our part MD5s with ``-N``."""
    expected = multipart_etag(part_md5s)
    tag = clean_etag(etag)
    if tag == expected:
        return VERIFIED_ETAG_MD5, ""
    return None, f"server multipart ETag {tag} != expected {expected}"


def existing_matches(
    item: UploadItem,
    *,
    size: int | None,
    sha256_meta: str | None,
    etag: object,
    md5_hex: str | None,
) -> bool:
    """Is the object already in S3 the catalogued file? Size and stored SHA-256 must match,
    and when its ETag is a plain MD5 and we know the local MD5, that must match too (metadata
    alone would trust an object whose bytes were altered under old metadata)."""
    if size != item.size or (sha256_meta or "").lower() != item.sha256.lower():
        return False
    tag = clean_etag(etag)
    if md5_hex is not None and tag and _PLAIN_MD5.match(tag):
        return tag == md5_hex
    return True
