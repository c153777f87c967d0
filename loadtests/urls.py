"""URL generation through the service: ``GET /urls/[key]`` returns the download URL as JSON.

This is the cost of handing out a link (an S3 HeadObject plus presigning in read-primary)
without the download itself.
"""

from __future__ import annotations

from _common import NAME_URL, CertstoreHttpUser, url_path
from locust import task


class CertificateUrlUser(CertstoreHttpUser):
    """Asks for the URL of seeded certificates."""

    needs_seed = True

    @task
    def url(self) -> None:
        key = self.random_seed_key()
        with self.client.get(
            url_path("/urls", key), name=NAME_URL, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            body = response.json()
            if body.get("key") != key or not body.get("url"):
                response.failure(f"unexpected body {body!r}")
            else:
                response.success()
