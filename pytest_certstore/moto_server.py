"""A real S3 endpoint over HTTP on loopback for tests: moto's server in its own process.

Started once per session (about a second); each test gets a fresh bucket instead of a fresh
server. The implementation lives in the product (``certstore._moto_process``), which also
embeds it for ``certstore serve --embedded-s3`` and ``certstore rehearse``; the plugin depends
on the product, never the other way round.
"""

from __future__ import annotations

from certstore._moto_process import FAKE_CREDENTIALS, MotoProcessError, free_port
from certstore._moto_process import MotoProcess as MotoServer

MotoServerError = MotoProcessError

__all__ = ["FAKE_CREDENTIALS", "MotoServer", "MotoServerError", "free_port"]
