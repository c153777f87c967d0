"""Uploads through the service's ``PUT /certificates/[key]`` (bearer token required).

Each user cycles through a small set of its own keys (``--key-prefix``/uploads/<process>-<user>-
<n>), so a long run overwrites rather than fills the disk and the bucket.
"""

from __future__ import annotations

import itertools
import os

from _common import NAME_UPLOAD, RUN_ID, CertstoreHttpUser, url_path
from locust import task

#: Keys each user rotates through.
KEYS_PER_USER = 20
_user_numbers = itertools.count()


class CertificateUploadUser(CertstoreHttpUser):
    """Uploads certificates of ``--cert-size-kb`` KiB."""

    def on_start(self) -> None:
        super().on_start()
        if not self.opts.api_token:
            raise RuntimeError("the upload scenario needs --api-token or CERTSTORE_API_TOKEN")
        self.user_number = next(_user_numbers)
        self.body = os.urandom(self.opts.cert_size_kb * 1024)
        self.headers = {
            "Authorization": f"Bearer {self.opts.api_token}",
            "Content-Type": "application/pdf",
        }
        self.sequence = itertools.count()

    @task
    def upload(self) -> None:
        n = next(self.sequence) % KEYS_PER_USER
        key = f"{self.opts.key_prefix}/uploads/{RUN_ID}-{self.user_number}-{n}.pdf"
        with self.client.put(
            url_path("/certificates", key),
            data=self.body,
            headers=self.headers,
            name=NAME_UPLOAD,
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}")
            elif (response.json() or {}).get("size") != len(self.body):
                response.failure(f"stored size {response.json().get('size')} != {len(self.body)}")
            else:
                response.success()
