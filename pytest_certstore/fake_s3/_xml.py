"""S3's XML: the documents the fake sends and the request bodies it reads.

Responses are built with plain string formatting (escaped), which is several times faster than
building an ElementTree for the small documents S3 returns; request bodies (DeleteObjects,
CompleteMultipartUpload, lifecycle) are parsed with ElementTree, namespace-agnostic.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import datetime
from xml.sax.saxutils import escape

from pytest_certstore.fake_s3._errors import S3ErrorReply, malformed_xml

__all__ = [
    "NAMESPACE",
    "document",
    "element",
    "error_document",
    "http_date",
    "iso_date",
    "local_name",
    "parse_xml",
]

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
_request_ids = itertools.count(1)


def element(tag: str, value: object) -> str:
    """``<tag>value</tag>`` with the value escaped (``None`` gives an empty string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def document(root: str, inner: str) -> bytes:
    """A complete S3 response document in S3's namespace."""
    return f'{_HEAD}<{root} xmlns="{NAMESPACE}">{inner}</{root}>'.encode()


def next_request_id() -> str:
    """A request id for ``x-amz-request-id`` (unique per process)."""
    return f"FAKE{next(_request_ids):012X}"


def error_document(error: S3ErrorReply, request_id: str, resource: str | None) -> bytes:
    """S3's ``<Error>`` document (no namespace, as S3 sends it)."""
    fields = "".join(element(name, value) for name, value in error.fields.items())
    return (
        f"{_HEAD}<Error>{element('Code', error.code)}{element('Message', error.message)}"
        f"{fields}{element('Resource', resource)}{element('RequestId', request_id)}"
        f"{element('HostId', 'fake-s3')}</Error>"
    ).encode()


def iso_date(moment: datetime) -> str:
    """Listing timestamps: ``2026-11-21T21:00:00.000Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def http_date(moment: datetime) -> str:
    """RFC 7231 date for Last-Modified."""
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def local_name(node: ET.Element) -> str:
    """A tag without its ``{namespace}``."""
    tag = node.tag
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def strip_namespaces(root: ET.Element) -> ET.Element:
    """Drop namespaces in place (S3 accepts bodies with or without its namespace)."""
    for node in root.iter():
        node.tag = local_name(node)
    return root


def parse_xml(body: bytes, expected_root: str) -> ET.Element:
    """Parse a request body whose root must be ``expected_root``; MalformedXML otherwise."""
    if not body:
        raise malformed_xml()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise malformed_xml() from None
    strip_namespaces(root)
    if root.tag != expected_root:
        raise malformed_xml()
    return root


def child_text(node: ET.Element, tag: str) -> str | None:
    """Text of the first direct child named ``tag``."""
    child = node.find(tag)
    return None if child is None else (child.text or "")
