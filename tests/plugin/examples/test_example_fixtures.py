"""Examples from docs/pytest-plugin.md: the S3 fixtures and ``cert_storage``."""

from __future__ import annotations

import os
import subprocess
import sys


def test_s3_fake(s3):
    # A real boto3 client; the bucket is fresh, empty and this test's own.
    s3.client.put_object(Bucket=s3.bucket, Key="a.pdf", Body=b"%PDF-1.4")
    assert s3.get("a.pdf") == b"%PDF-1.4"
    assert s3.endpoint_url is None  # in-process: no socket


def test_s3_moto_long_tail(s3_moto):
    s3_moto.client.put_bucket_tagging(
        Bucket=s3_moto.bucket, Tagging={"TagSet": [{"Key": "team", "Value": "certs"}]}
    )
    tags = s3_moto.client.get_bucket_tagging(Bucket=s3_moto.bucket)["TagSet"]
    assert tags == [{"Key": "team", "Value": "certs"}]


def test_s3_server_for_a_subprocess(s3_server, tmp_path):
    source = tmp_path / "cert.pdf"
    source.write_bytes(b"%PDF-1.4 from a subprocess")
    env = {**os.environ, **s3_server.env(CERT_S3_ONLY="true")}
    code = "from certstore.cli import main; raise SystemExit(main(['put', 'c.pdf', %r]))"
    subprocess.run(
        [sys.executable, "-c", code % str(source)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert s3_server.get("certificates/c.pdf") == b"%PDF-1.4 from a subprocess"


def test_s3_live(s3_live):
    # Runs only with S3_TESTS=1 and AWS_STORAGE_BUCKET_NAME set; otherwise skipped.
    s3_live.put("probe.txt", b"hello")  # stored under s3_live.prefix, deleted afterwards
    assert s3_live.get("probe.txt") == b"hello"


def test_cert_storage(cert_storage, s3):
    storage = cert_storage(dual_write=True, read_primary=False)  # s3="s3" by default
    storage.save("2026/cert-1.pdf", b"%PDF-1.4 one")
    assert s3.get("certificates/2026/cert-1.pdf") == b"%PDF-1.4 one"
    assert storage.read("2026/cert-1.pdf") == b"%PDF-1.4 one"  # from local (authoritative)
