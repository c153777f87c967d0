"""One exception tree for the whole product.

Every error carries the thing that was wrong (the variable, the key, the bucket) so an operator
reading one line knows what to fix. boto errors are translated into these at the backend
boundary with ``raise ... from err``; nothing above the backends sees a ``ClientError``.
"""

from __future__ import annotations

from typing import Any


class ContextError(Exception):
    """An exception that carries what was wrong as attributes and survives pickling.

    The base of this package's tree and of the ``slo`` package's: a one-line message for the
    user, the context (key, bucket, file, field...) for code, and a ``__reduce__`` so errors
    cross process boundaries (xdist workers, executors) intact.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for name, value in context.items():
            setattr(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[ContextError], message: str, context: dict[str, Any]) -> ContextError:
    error = cls.__new__(cls)
    ContextError.__init__(error, message, **context)
    return error


class CertstoreError(ContextError):
    """Base of every error certstore raises on purpose."""


class ConfigError(CertstoreError, ValueError):
    """A setting, flag or flags file is invalid. ``variable`` and ``value`` name it."""

    def __init__(self, message: str, *, variable: str, value: Any = None) -> None:
        super().__init__(message, variable=variable, value=value)


class InvalidKeyError(CertstoreError, ValueError):
    """An object key breaks the key rules (see :mod:`certstore.keys`)."""

    def __init__(self, message: str, *, key: Any, reason: str) -> None:
        super().__init__(message, key=key, reason=reason)


class StorageError(CertstoreError):
    """An operation on a backend failed. ``backend`` is ``local`` or ``s3``."""

    def __init__(self, message: str, *, key: str | None = None, backend: str = "", **extra: Any):
        super().__init__(message, key=key, backend=backend, **extra)


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The object does not exist on the backend that was asked."""


class KeyConflictError(StorageError):
    """The key collides with what the media root already holds under another kind: a folder
    where the certificate would go, or a file where one of its folders would go."""


class S3Error(StorageError):
    """S3 answered with an error, or could not be reached, after botocore's retries.

    ``code`` is the S3 error code (``SlowDown``, ``InternalError``...) or the name of the
    transport failure (``ReadTimeout``, ``EndpointConnectionError``); ``attempts`` is how many
    attempts botocore made when it is known.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        bucket: str | None = None,
        operation: str = "",
        code: str = "",
        status: int | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(
            message,
            key=key,
            backend="s3",
            bucket=bucket,
            operation=operation,
            code=code,
            status=status,
            attempts=attempts,
        )


class S3ObjectNotFoundError(S3Error, ObjectNotFoundError):
    """S3 has no object under that key."""


class BucketNotFoundError(S3Error):
    """The configured bucket does not exist (or is not visible with these credentials)."""


class EndpointUnreachableError(S3Error):
    """The S3 endpoint could not be connected to at all."""


class ReportWriteError(CertstoreError):
    """A check's ``--output`` report could not be written (it was printed first)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message, path=path)
