"""A throwaway S3 endpoint for ``certstore serve --embedded-s3``: moto's server on loopback.

This is the product's own small copy of the startup the test plugin does, so the product never
imports the test plugin. It is for demos, local load tests and CI on a fresh machine: the data
lives in memory and disappears on exit, and it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from certstore.errors import ConfigError

logger = logging.getLogger(__name__)

#: Credentials the embedded endpoint accepts (it checks none); never real ones.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "embedded", "AWS_SECRET_ACCESS_KEY": "embedded"}
DEFAULT_BUCKET = "certstore"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedS3:
    """moto's threaded server on ``127.0.0.1`` with ``bucket`` created at start."""

    host = "127.0.0.1"

    def __init__(
        self, bucket: str = DEFAULT_BUCKET, *, port: int = 0, region: str = "us-east-1"
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.port = port or _free_port(self.host)
        self._server: Any = None
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
            from moto.server import ThreadedMotoServer
        except ImportError as err:
            raise ConfigError(
                "--embedded-s3 needs the 's3-server' extra (moto[server]): "
                "pip install 'certstore[s3-server]'",
                variable="--embedded-s3",
            ) from err
        with self._lock:
            if self._server is None:
                logging.getLogger("werkzeug").setLevel(logging.ERROR)
                self._server = ThreadedMotoServer(
                    ip_address=self.host, port=self.port, verbose=False
                )
                self._server.start()
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
            if self._server is not None:
                self._server.stop()
                self._server = None

    def __enter__(self) -> EmbeddedS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
