"""A throwaway S3 endpoint for ``certstore serve --embedded-s3``: moto's server on loopback.

The server runs in a child process (:mod:`certstore._moto_process`) so it never competes with
the service for the GIL. It is for demos, local load tests and CI on a fresh machine: the data
lives in memory and disappears on exit, and it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import threading

from certstore._moto_process import MotoProcess, MotoProcessError
from certstore.errors import ConfigError

logger = logging.getLogger(__name__)

#: Credentials the embedded endpoint accepts (it checks none); never real ones.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "embedded", "AWS_SECRET_ACCESS_KEY": "embedded"}
DEFAULT_BUCKET = "certstore"


class EmbeddedS3:
    """moto's threaded server on ``127.0.0.1`` with ``bucket`` created at start."""

    host = "127.0.0.1"

    def __init__(
        self, bucket: str = DEFAULT_BUCKET, *, port: int = 0, region: str = "us-east-1"
    ) -> None:
        self.bucket = bucket
        self.region = region
        self._process = MotoProcess(self.host, port)
        self.port = self._process.port
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The endpoint URL (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The variables that point certstore (and any boto3 client) at this endpoint."""
        return {
            "AWS_S3_ENDPOINT_URL": self.url,
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_REGION_NAME": self.region,
            **DUMMY_CREDENTIALS,
        }

    def start(self) -> str:
        """Start the server and create the bucket; returns :attr:`url`."""
        try:
            with self._lock:
                self._process.start()
        except MotoProcessError as err:
            raise ConfigError(f"--embedded-s3: {err}", variable="--embedded-s3") from err
        self._create_bucket()
        logger.info("embedded S3 on %s, bucket %s", self.url, self.bucket)
        return self.url

    def _create_bucket(self) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        try:
            client.create_bucket(Bucket=self.bucket)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (idempotent); every object it held is gone."""
        with self._lock:
            self._process.stop()

    def __enter__(self) -> EmbeddedS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
