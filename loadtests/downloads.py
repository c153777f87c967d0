"""Downloads through the service, following the presigned redirect to S3 by hand.

Both legs are reported: ``GET /certificates/[key]`` (the service: a 302, or a 200 when it
streams the local copy) and ``GET s3 presigned`` (the object from S3). A local stream while
read-primary is on is also reported as ``FALLBACK /certificates/[key] local fallback`` so the
fallback rate shows in Locust's statistics. A 404, any other status, or a body of the wrong
size is a failure.
"""

from __future__ import annotations

from _common import (
    NAME_DOWNLOAD,
    NAME_FALLBACK,
    NAME_PRESIGNED,
    TYPE_FALLBACK,
    CertstoreHttpUser,
    url_path,
)
from locust import task


class CertificateDownloadUser(CertstoreHttpUser):
    """Downloads seeded certificates the way a browser does (302, then S3)."""

    needs_seed = True

    @task
    def download(self) -> None:
        key = self.random_seed_key()
        expected = self.opts.cert_size_kb * 1024
        with self.client.get(
            url_path("/certificates", key),
            name=NAME_DOWNLOAD,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            status = response.status_code
            if status == 302:
                location = response.headers.get("Location")
                if not location:
                    response.failure("302 without a Location header")
                    return
                response.success()
                if self.opts.skip_s3_leg:
                    return
            elif status == 200:
                if len(response.content or b"") != expected:
                    response.failure(
                        f"local stream of {len(response.content or b'')} bytes, expected {expected}"
                    )
                    return
                response.success()
                fallback = response.headers.get("X-Certstore-Fallback")
                if fallback:
                    self.environment.events.request.fire(
                        request_type=TYPE_FALLBACK,
                        name=NAME_FALLBACK,
                        response_time=response.request_meta["response_time"],
                        response_length=expected,
                        exception=None,
                        context={"reason": fallback},
                    )
                return
            else:
                response.failure(f"HTTP {status}")
                return
        with self.client.get(location, name=NAME_PRESIGNED, catch_response=True) as leg:
            if leg.status_code != 200:
                leg.failure(f"HTTP {leg.status_code} from S3")
            elif len(leg.content or b"") != expected:
                leg.failure(f"S3 sent {len(leg.content or b'')} bytes, expected {expected}")
            else:
                leg.success()
