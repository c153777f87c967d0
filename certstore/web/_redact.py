"""Keep presigned signatures, credentials and tokens out of log lines.

uvicorn's access log prints each request's path *with its query string*, so a request that
carries a presigned query (or a token in its URL) would write it to disk. :class:`RedactFilter`
rewrites such values to ``REDACTED`` in any record it sees; ``certstore serve`` attaches it to
every handler it logs through. Our own code never logs a presigned URL in the first place.
"""

from __future__ import annotations

import logging
import re

#: Query parameters whose values are secrets (SigV4 and SigV2 presigning, tokens).
_SECRET_PARAMS = re.compile(
    r"(?i)(?P<name>X-Amz-(?:Signature|Credential|Security-Token)|Signature|AWSAccessKeyId"
    r"|access_token|token|api_token)=(?P<value>[^&\s\"']*)"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """``text`` with secret query values and bearer tokens replaced by ``REDACTED``."""
    text = _SECRET_PARAMS.sub(lambda m: f"{m.group('name')}=REDACTED", text)
    return _BEARER.sub(r"\1REDACTED", text)


class RedactFilter(logging.Filter):
    """A logging filter that redacts the message and the arguments of every record.

    Arguments are redacted in place rather than merged into the message, because uvicorn's
    access formatter unpacks ``record.args`` itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def install(
    logger_names: tuple[str, ...] = ("", "uvicorn", "uvicorn.access", "uvicorn.error"),
) -> RedactFilter:
    """Attach one :class:`RedactFilter` to every handler of the named loggers."""
    redactor = RedactFilter()
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactFilter) for f in handler.filters):
                handler.addFilter(redactor)
    return redactor
