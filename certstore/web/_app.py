"""The ASGI application: download, upload, URL, health and metrics endpoints.

Every storage call blocks (boto3, the filesystem), so each runs in Starlette's thread pool and
files are streamed in chunks; the event loop only moves bytes. Routes:

=======================================  =====================================================
``GET|HEAD /certificates/{key}``         302 to a presigned S3 URL when reads go to S3 and S3
                                         holds the object; otherwise the local file (200);
                                         404 when nobody has it
``PUT /certificates/{key}``              save through the router; bearer token required;
                                         201, or 400 (bad key or body), 401/403, 409 (the key
                                         collides with a folder), 413, 503 (S3 needed and down)
``GET /urls/{key}``                      JSON ``{key, url, source}``: the URL a download would
                                         use, without following it
``GET /healthz``                         200 ``ok``/``degraded`` (S3 down while local serves,
                                         or running on the last good flags), 503 ``fail``;
                                         one JSON entry per check
``GET /metrics``                         the metric catalog in Prometheus text format
=======================================  =====================================================

A download that redirects to S3 first confirms the object with a HeadObject; keys confirmed in
the last ``CERTSTORE_WEB_EXISTS_TTL`` seconds (default 60) skip it (see ``_exists_cache``). The
service forgets a key on its own upload and whenever S3 says it is gone.

Any other method on these paths is 405 with an ``Allow`` header (OPTIONS included: the service
has no browser clients that need CORS preflight). Responses that carry an error are JSON
``{"error": ..., "detail": ...}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from certstore.config import Settings
from certstore.errors import (
    CertstoreError,
    ConfigError,
    InvalidKeyError,
    KeyConflictError,
    ObjectNotFoundError,
    S3Error,
)
from certstore.keys import normalize_key
from certstore.metrics import PrometheusEmitter, default_prometheus
from certstore.storage import CertificateStorage
from certstore.web._auth import check_bearer
from certstore.web._exists_cache import ExistsCache
from certstore.web._health import DEFAULT_TIMEOUT, HealthChecker
from certstore.web._locate import Source, locate, presigned_url

logger = logging.getLogger(__name__)

#: Largest upload accepted by default (certificates are PDFs of tens to hundreds of KiB).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Bytes per chunk when streaming a local file.
CHUNK_SIZE = 64 * 1024
#: Uploads up to this size are spooled in memory, larger ones in a temporary file.
_SPOOL_IN_MEMORY = 1024 * 1024

SOURCE_HEADER = "X-Certstore-Source"
FALLBACK_HEADER = "X-Certstore-Fallback"


def _error(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key)
    return guessed or "application/octet-stream"


def _upload_content_type(declared: str | None, key: str) -> str:
    """The client's type, unless it is missing or a form encoding (curl's default for
    ``--data-binary``; S3 endpoints built on form parsers would even drop such bodies): then
    the type the key's extension implies."""
    media = (declared or "").split(";")[0].strip().lower()
    if not media or media == "application/x-www-form-urlencoded" or media.startswith("multipart/"):
        return _content_type(key)
    return declared.strip()  # type: ignore[union-attr]


def _iter_file(handle: BinaryIO) -> Iterator[bytes]:
    try:
        while True:
            chunk = handle.read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk
    finally:
        handle.close()


def _open_local(storage: CertificateStorage, key: str) -> tuple[BinaryIO, int]:
    local = storage.local
    if local is None:
        raise ObjectNotFoundError(f"no local media root to read {key!r} from", key=key)
    handle = local.open(key)
    try:
        size = os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        size = -1
    return handle, size


@dataclass
class _Target:
    """Where a download goes: a presigned ``url``, or a local ``handle`` of ``size`` bytes."""

    url: str | None = None
    handle: BinaryIO | None = None
    size: int = -1
    fallback: str | None = None


def _resolve(
    storage: CertificateStorage,
    key: str,
    open_file: bool,
    cache: ExistsCache | None = None,
    revalidate: bool = False,
) -> _Target:
    """Flags, S3 lookup (or the exists cache), presigning and the local open in one
    worker-thread hop.

    Raises ``ObjectNotFoundError`` when nobody has ``key``. With ``open_file`` false the local
    file is only checked for existence (the URL endpoint streams nothing).
    """
    flags = storage.flags()
    where = locate(storage, key, flags, cache, revalidate=revalidate)
    fallback = where.fallback
    if where.source is Source.S3:
        url = presigned_url(storage, key, flags)
        if url is not None:
            if cache is not None:
                lifetime = getattr(storage.s3, "url_expiry", 0)
                cache.attach_url(key, url, url_lifetime=lifetime)
            return _Target(url=url)
        if cache is not None:
            cache.forget(key)  # S3 could not be used for it: confirm again next time
        fallback = "error"
    if not open_file:
        local = storage.local
        if local is None or not local.exists(key):
            raise ObjectNotFoundError(f"no certificate under {key!r}", key=key)
        return _Target(fallback=fallback)
    handle, size = _open_local(storage, key)
    return _Target(handle=handle, size=size, fallback=fallback)


def _redirect(url: str) -> Response:
    return Response(
        status_code=302,
        headers={"Location": url, "Cache-Control": "no-store", SOURCE_HEADER: "s3"},
    )


def _prometheus_for(storage: CertificateStorage) -> PrometheusEmitter:
    """The Prometheus emitter fed by ``storage``'s metrics (one is added if it has none)."""
    for emitter in storage.metrics.emitters:
        if isinstance(emitter, PrometheusEmitter):
            return emitter
    default = default_prometheus()
    from certstore.metrics import default_metrics

    if storage.metrics is default_metrics():
        return default
    emitter = PrometheusEmitter()
    storage.metrics.emitters.append(emitter)
    return emitter


class CertificateService:
    """The request handlers, bound to one router and its limits."""

    def __init__(
        self,
        storage: CertificateStorage,
        *,
        api_token: str | None,
        max_upload_bytes: int,
        health_timeout: float,
        exists_cache: ExistsCache | None = None,
    ) -> None:
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be at least 1, got {max_upload_bytes}")
        self.storage = storage
        self.api_token = api_token
        self.max_upload_bytes = max_upload_bytes
        #: Keys recently confirmed in S3 (disabled, ttl 0, when none is given).
        self.exists_cache = exists_cache if exists_cache is not None else ExistsCache(0)
        self._refreshes: set[asyncio.Task[None]] = set()
        self.health = HealthChecker(storage, timeout=health_timeout)
        self.prometheus = _prometheus_for(storage)

    async def _key(self, request: Request) -> str:
        return normalize_key(request.path_params["key"])

    async def certificate(self, request: Request) -> Response:
        """One route for the three methods, so a 405 lists all of them in ``Allow``."""
        if request.method == "PUT":
            return await self.upload(request)
        return await self.download(request)

    def _cached_redirect(self, key: str) -> str | None:
        """A presigned URL from the exists cache, answered on the event loop (no thread hop).

        Only while reads go to S3 under the flags in force now, so a rollback takes effect
        on the next request. Counted as ``cert.s3.url`` like any URL the service hands out.
        """
        if not self.exists_cache.enabled:
            return None
        try:
            flags = self.storage.flags()
        except ConfigError:
            return None  # the slow path reports it
        if not (flags.read_primary or flags.s3_only):
            return None
        url = self.exists_cache.url_for(key)
        if url is not None:
            self.storage.metrics.inc("cert.s3.url", key=key)
            if self.exists_cache.claim_refresh(key):
                task = asyncio.get_running_loop().create_task(self._revalidate(key))
                self._refreshes.add(task)
                task.add_done_callback(self._refreshes.discard)
        return url

    async def _revalidate(self, key: str) -> None:
        """Re-check ``key`` in S3 off the request path; the cache keeps or drops it."""
        try:
            await run_in_threadpool(_resolve, self.storage, key, False, self.exists_cache, True)
        except Exception as err:  # a failed re-check only means the entry is not renewed
            logger.debug("background re-check of %r failed: %s", key, err)
        finally:
            self.exists_cache.release_refresh(key)

    async def drain_refreshes(self) -> None:
        """Wait for the background re-checks in flight (tests, shutdown)."""
        while self._refreshes:
            await asyncio.gather(*list(self._refreshes), return_exceptions=True)

    async def download(self, request: Request) -> Response:
        """GET/HEAD: redirect to S3 when it holds the object, else stream the local file."""
        try:
            key = await self._key(request)
            cached = self._cached_redirect(key)
            if cached is not None:
                return _redirect(cached)
            target = await run_in_threadpool(_resolve, self.storage, key, True, self.exists_cache)
        except InvalidKeyError as err:
            return _error(400, "invalid_key", str(err))
        except ObjectNotFoundError:
            return _error(404, "not_found", f"no certificate under {request.path_params['key']!r}")
        except (S3Error, ConfigError) as err:
            logger.warning("download failed: %s", err)
            return _error(503, "storage_unavailable", "the certificate store is unavailable")
        except CertstoreError as err:
            logger.error("download of %r failed: %s", request.path_params.get("key"), err)
            return _error(500, "storage_error", "the certificate could not be read")
        if target.url is not None:
            logger.debug("download %r: redirect to S3", key)
            return _redirect(target.url)
        handle = target.handle
        assert handle is not None
        headers = {
            SOURCE_HEADER: "local",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        if target.fallback:
            headers[FALLBACK_HEADER] = target.fallback
        if target.size >= 0:
            headers["Content-Length"] = str(target.size)
        if request.method == "HEAD":
            await run_in_threadpool(handle.close)
            return Response(status_code=200, headers=headers, media_type=_content_type(key))
        return StreamingResponse(_iter_file(handle), headers=headers, media_type=_content_type(key))

    async def url(self, request: Request) -> Response:
        """GET /urls/{key}: the URL a download would be sent to, as JSON."""
        try:
            key = await self._key(request)
            target = await run_in_threadpool(_resolve, self.storage, key, False, self.exists_cache)
        except InvalidKeyError as err:
            return _error(400, "invalid_key", str(err))
        except ObjectNotFoundError:
            return _error(404, "not_found", f"no certificate under {request.path_params['key']!r}")
        except (S3Error, ConfigError) as err:
            logger.warning("url failed: %s", err)
            return _error(503, "storage_unavailable", "the certificate store is unavailable")
        except CertstoreError as err:
            logger.error("url of %r failed: %s", request.path_params.get("key"), err)
            return _error(500, "storage_error", "the certificate could not be read")
        if target.url is not None:
            body = {"key": key, "url": target.url, "source": "s3"}
        else:
            body = {"key": key, "url": f"/certificates/{quote(key)}", "source": "local"}
            if target.fallback:
                body["fallback"] = target.fallback
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def upload(self, request: Request) -> Response:
        """PUT: authenticate, check the key and size, then save through the router."""
        refused = check_bearer(request.headers.get("authorization"), self.api_token)
        if refused is not None:
            error = "uploads_disabled" if refused.status == 403 else "unauthorized"
            return _error(refused.status, error, refused.message, refused.headers)
        try:
            key = await self._key(request)
        except InvalidKeyError as err:
            return _error(400, "invalid_key", str(err))
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _error(400, "bad_request", "Content-Length is not a number")
            if int(declared) > self.max_upload_bytes:
                return self._too_large()
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            digest = hashlib.sha256()
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_upload_bytes:
                    return self._too_large()
                digest.update(chunk)
                spool.write(chunk)
            if size == 0:
                return _error(400, "empty_body", "a certificate cannot be empty")
            spool.seek(0)
            content_type = _upload_content_type(request.headers.get("content-type"), key)
            # Forget before and after the save: whatever S3 held, a download must confirm the
            # new state (a failed save may have left S3 without the object).
            self.exists_cache.forget(key)
            try:
                canonical = await run_in_threadpool(
                    self.storage.save, key, spool, content_type=content_type
                )
            except InvalidKeyError as err:
                return _error(400, "invalid_key", str(err))
            except (S3Error, ConfigError) as err:
                logger.warning("upload of %r failed: %s", key, err)
                return _error(503, "storage_unavailable", "the certificate store is unavailable")
            except KeyConflictError as err:
                logger.info("upload of %r refused: %s", key, err)
                return _error(
                    409,
                    "key_conflict",
                    f"{key!r} collides with a folder of that name, or one of its folders is a "
                    "certificate",
                )
            except CertstoreError as err:
                logger.error("upload of %r failed: %s", key, err)
                return _error(500, "storage_error", "the certificate could not be stored")
            finally:
                self.exists_cache.forget(key)
        logger.info("upload %r: %d bytes", canonical, size)
        return JSONResponse(
            {"key": canonical, "size": size, "sha256": digest.hexdigest()},
            status_code=201,
            headers={"Location": f"/certificates/{quote(canonical)}"},
        )

    def _too_large(self) -> JSONResponse:
        return _error(
            413,
            "too_large",
            f"a certificate may be at most {self.max_upload_bytes} bytes",
            {"Connection": "close"},
        )

    async def healthz(self, request: Request) -> Response:
        """GET /healthz: 200 while the service can serve (``ok`` or ``degraded``), else 503."""
        health, phase = await self.health.run()
        return JSONResponse(
            health.as_json(phase),
            status_code=200 if health.ok else 503,
            headers={"Cache-Control": "no-store"},
        )

    async def metrics(self, request: Request) -> Response:
        """GET /metrics: Prometheus text exposition of the catalog."""
        from prometheus_client import CONTENT_TYPE_LATEST

        body = await run_in_threadpool(self.prometheus.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_app(
    storage: CertificateStorage | None = None,
    settings: Settings | None = None,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    api_token: str | None = None,
    health_timeout: float = DEFAULT_TIMEOUT,
    exists_ttl: float | None = None,
    exists_cache: ExistsCache | None = None,
) -> Starlette:
    """The ASGI app for ``storage`` (default: the router built from ``settings``).

    ``settings`` defaults to the environment now. The upload token is ``api_token`` when given,
    else ``settings.api_token`` (``CERTSTORE_API_TOKEN``); with neither, uploads answer 403.
    Downloads remember keys confirmed in S3 for ``exists_ttl`` seconds (default
    ``settings.web_exists_ttl``, ``CERTSTORE_WEB_EXISTS_TTL``; 0 disables); ``exists_cache``
    replaces that cache outright (tests give one with a fake clock).
    """
    if settings is None:
        settings = Settings.from_env()
    if storage is None:
        storage = CertificateStorage.from_settings(settings)
    if exists_cache is None:
        ttl = settings.web_exists_ttl if exists_ttl is None else exists_ttl
        exists_cache = ExistsCache(ttl)
    elif exists_ttl is not None:
        raise ValueError("give exists_ttl or exists_cache, not both")
    service = CertificateService(
        storage,
        api_token=api_token if api_token is not None else settings.api_token,
        max_upload_bytes=max_upload_bytes,
        health_timeout=health_timeout,
        exists_cache=exists_cache,
    )
    routes = [
        Route("/certificates/{key:path}", service.certificate, methods=["GET", "HEAD", "PUT"]),
        Route("/urls/{key:path}", service.url, methods=["GET"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/metrics", service.metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False
    app.state.service = service
    return app
