"""Bearer-token check for uploads.

Uploads are refused outright (403) while the service has no token configured: an
unauthenticated write path must never be the default. The comparison is constant-time
(:func:`hmac.compare_digest`) so the token cannot be guessed byte by byte from response times.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

#: The ``WWW-Authenticate`` challenge sent with every 401.
REALM = 'Bearer realm="certstore"'


@dataclass(frozen=True)
class AuthFailure:
    """Why a request may not upload: the HTTP status, a message and extra headers."""

    status: int
    message: str
    headers: dict[str, str]


def check_bearer(authorization: str | None, token: str | None) -> AuthFailure | None:
    """None when ``authorization`` carries ``token``; otherwise the refusal to send.

    - no token configured: 403, uploads are disabled on this service;
    - no or malformed ``Authorization`` header: 401 with a ``Bearer`` challenge;
    - wrong token: 401 with ``error="invalid_token"`` (RFC 6750).
    """
    if not token:
        return AuthFailure(
            403,
            "uploads are disabled: the service has no API token configured "
            "(set CERTSTORE_API_TOKEN)",
            {},
        )
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return AuthFailure(
            401,
            "uploads need an 'Authorization: Bearer <token>' header",
            {"WWW-Authenticate": REALM},
        )
    if not hmac.compare_digest(presented.strip().encode("utf-8"), token.encode("utf-8")):
        return AuthFailure(
            401,
            "the bearer token is not valid",
            {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    return None
