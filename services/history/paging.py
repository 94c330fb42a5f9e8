"""Opaque keyset page tokens.

A token is the (time, id) of the last item served plus a fingerprint of the
query it belongs to, base64url-encoded JSON. Keyset paging (rather than an
offset) is what keeps pages free of gaps and repeats while new records arrive:
the next page starts strictly after the last item seen, wherever new rows land.
The token grants nothing (every read is scoped by the verified caller), so it
needs no signature; the fingerprint only stops a token being replayed against a
different query, which would silently skip or repeat rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

from services.history.storage import Position

_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class BadPageToken(ValueError):
    pass


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def encode(position: Position, query_fingerprint: str) -> str:
    micros = (position.at - _EPOCH) // _MICROSECOND  # exact, unlike float timestamp()
    payload = json.dumps([_VERSION, micros, position.id, query_fingerprint], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode(token: str, query_fingerprint: str) -> Position | None:
    """The position a token points after; None for an empty token."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        version, micros, item_id, token_fingerprint = json.loads(base64.urlsafe_b64decode(padded))
        if version != _VERSION or not isinstance(micros, int) or not isinstance(item_id, str):
            raise ValueError
        at = _EPOCH + micros * _MICROSECOND
    except (ValueError, TypeError, OverflowError, OSError):
        raise BadPageToken("page_token is malformed") from None
    if token_fingerprint != query_fingerprint:
        raise BadPageToken("page_token belongs to a different query (filters or user changed)")
    return Position(at, item_id)
