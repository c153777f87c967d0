"""Synthetic certificates: small, valid PDF files with realistic (partly UTF-8) names.

A rehearsal must push bytes that look like production's: real PDF structure (header, objects,
a content stream drawing one line of text, a cross-reference table with exact byte offsets, a
trailer), a configurable size (padding is a comment block inside the content stream, so the file
stays a valid PDF at any size), and the key shapes that break naive code: UTF-8 names such as
Curaçao, 東京 and Δ, nested folders per tournament.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

#: Names with non-ASCII characters, used for a share of the keys.
UTF8_NAMES: tuple[str, ...] = ("Curaçao", "東京", "Δ-delta", "Zürich", "São-Paulo", "Kraków")
ASCII_NAMES: tuple[str, ...] = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")

_HEADER = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
_MIN_PAD_LINE = 64


@dataclass(frozen=True)
class SyntheticCertificate:
    """One generated certificate: its key, its bytes and their SHA-256."""

    key: str
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)


def _pdf_text(text: str) -> bytes:
    """``text`` as a PDF literal string (ASCII only: the standard Helvetica has no CJK)."""
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    escaped = ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped})".encode("ascii")


def make_pdf(title: str, size: int = 0) -> bytes:
    """A valid single-page PDF showing ``title``, padded to ``size`` bytes when that is larger
    than the bare document (about 600 bytes)."""
    text = b"BT /F1 18 Tf 72 720 Td " + _pdf_text(title) + b" Tj ET\n"

    def build(padding: int) -> bytes:
        pad = b""
        if padding > 0:
            line = b"% " + b"x" * (_MIN_PAD_LINE - 3) + b"\n"
            full, rest = divmod(padding, len(line))
            pad = line * full
            if rest:
                pad += (b"%" + b"x" * (rest - 2) + b"\n") if rest >= 2 else b"\n"
        stream = text + pad
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
        out = bytearray(_HEADER)
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
        xref_at = len(out)
        out += f"xref\n0 {len(objects) + 1}\n".encode()
        out += b"0000000000 65535 f \n"
        for offset in offsets:
            out += f"{offset:010d} 00000 n \n".encode()
        out += (
            f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n"
        ).encode()
        return bytes(out)

    bare = build(0)
    if size <= len(bare):
        return bare
    padded = build(size - len(bare))
    # the /Length digits may grow with the padding; trim the padding by the difference
    excess = len(padded) - size
    return build(size - len(bare) - excess) if excess else padded


def synthetic_key(index: int, rng: random.Random, utf8_share: float) -> str:
    """A key like ``tournament-007/Curaçao-00042.pdf``."""
    tournament = index % 25
    names = UTF8_NAMES if rng.random() < utf8_share else ASCII_NAMES
    return f"tournament-{tournament:03d}/{rng.choice(names)}-{index:05d}.pdf"


def generate(
    count: int, *, size: int = 50 * 1024, utf8_share: float = 0.1, seed: int = 0
) -> list[SyntheticCertificate]:
    """``count`` certificates, deterministic for a ``seed``; sizes vary ±20 % around ``size``."""
    rng = random.Random(seed)
    certificates = []
    for index in range(count):
        key = synthetic_key(index, rng, utf8_share)
        target = max(0, int(size * rng.uniform(0.8, 1.2)))
        data = make_pdf(f"Certificate of achievement {key}", target)
        certificates.append(SyntheticCertificate(key, data, hashlib.sha256(data).hexdigest()))
    return certificates
