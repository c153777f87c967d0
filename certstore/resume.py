"""Resume tokens: where a backfill stopped, bound to the filters it ran with.

A token is base64url (no padding) of a small JSON object::

    {"v": 1, "last_id": 1234, "fp": "<selection fingerprint>", "filters": {...}, "c": "<check>"}

``c`` is the first 16 hex digits of SHA-256 over the other fields, so a token cut short by a
terminal or edited by hand is refused rather than silently resuming somewhere else. ``fp`` ties
it to the run's filters (tournament, shard, start and end id): a token used with other filters
would start at a position that means nothing there, so that is refused too, with both filter
sets named.
``--limit`` and ``--batch-size`` are not part of it: a resumed run may change them.

A dry run's token carries ``"dry": true``: a dry run migrates nothing, so its position says how
far it looked, not how far the migration got, and a real run refuses it (it would skip every
pending row before that position, and record the skip in its checkpoint).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from certstore.catalog import Selection
from certstore.errors import ConfigError

TOKEN_VERSION = 1
_OPTION = "--resume-token"


def _check(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ResumeToken:
    """A position (``last_id``: every selected row up to it was processed) and its filters."""

    last_id: int
    fingerprint: str
    filters: dict[str, Any]
    version: int = TOKEN_VERSION
    dry_run: bool = False

    @classmethod
    def for_selection(
        cls, selection: Selection, last_id: int, *, dry_run: bool = False
    ) -> ResumeToken:
        """The token of a run over ``selection`` that got to ``last_id``."""
        return cls(last_id, selection.fingerprint(), selection.describe(), dry_run=dry_run)

    def encode(self) -> str:
        """The printable token."""
        payload: dict[str, Any] = {
            "v": self.version,
            "last_id": self.last_id,
            "fp": self.fingerprint,
            "filters": self.filters,
        }
        if self.dry_run:
            payload["dry"] = True
        payload["c"] = _check(payload)
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: str) -> ResumeToken:
        """Parse a token, or raise :class:`ConfigError` saying what is wrong with it."""
        text = (token or "").strip()
        if not text:
            raise ConfigError(f"{_OPTION} is empty", variable=_OPTION, value=token)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            payload = json.loads(raw.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ConfigError(
                f"{_OPTION} {text[:40]!r} is not a certstore resume token (not base64url JSON; "
                "was it cut short when copied?)",
                variable=_OPTION,
                value=token,
            ) from None
        if not isinstance(payload, dict) or "c" not in payload:
            raise ConfigError(
                f"{_OPTION} is not a certstore resume token (no checksum)",
                variable=_OPTION,
                value=token,
            )
        check = payload.pop("c")
        if check != _check(payload):
            raise ConfigError(
                f"{_OPTION} is corrupt: its checksum does not match its content",
                variable=_OPTION,
                value=token,
            )
        version = payload.get("v")
        if version != TOKEN_VERSION:
            raise ConfigError(
                f"{_OPTION} has version {version!r}; this certstore reads version {TOKEN_VERSION}",
                variable=_OPTION,
                value=token,
            )
        last_id, fingerprint, filters, dry_run = (
            payload.get("last_id"),
            payload.get("fp"),
            payload.get("filters"),
            payload.get("dry", False),
        )
        if (
            not isinstance(last_id, int)
            or last_id < 0
            or not isinstance(fingerprint, str)
            or not isinstance(filters, dict)
            or not isinstance(dry_run, bool)
        ):
            raise ConfigError(
                f"{_OPTION} is malformed (bad last_id, fp or filters)",
                variable=_OPTION,
                value=token,
            )
        return cls(last_id, fingerprint, filters, version, dry_run)

    def check_usable(self, *, dry_run: bool) -> None:
        """Raise :class:`ConfigError` when a real run is given a dry run's token."""
        if self.dry_run and not dry_run:
            raise ConfigError(
                f"{_OPTION} comes from a dry run, which migrates nothing: its position is how "
                "far the dry run looked, not how far the migration got. Start the real run "
                "without it (or with --resume: its checkpoint is only written by real runs)",
                variable=_OPTION,
                value=self.encode(),
            )

    def check_matches(self, selection: Selection) -> None:
        """Raise :class:`ConfigError` unless this token was made for ``selection``."""
        if self.fingerprint == selection.fingerprint():
            return
        mine = _describe(self.filters)
        theirs = _describe(selection.describe())
        raise ConfigError(
            f"{_OPTION} was made for a run with {mine}, but this run has {theirs}; "
            "use the same --tournament-id/--shard/--start-id/--end-id, or start without a token",
            variable=_OPTION,
            value=self.encode(),
        )


def _describe(filters: dict[str, Any]) -> str:
    parts = [f"{name}={value}" for name, value in sorted(filters.items()) if value is not None]
    return ", ".join(parts) if parts else "no filters"
