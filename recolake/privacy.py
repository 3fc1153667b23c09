"""Keyed pseudonymisation of user ids (HMAC-SHA256, hex).

The same function runs in Python (the API hashes incoming ids) and in Spark
(`features.transforms.pseudonymise_column`), so a user is the same key everywhere and
the raw id never leaves bronze.
"""

from __future__ import annotations

import hashlib
import hmac

BLOCK_SIZE = 64  # SHA-256 block size in bytes (RFC 2104)


def pseudonymise(user_id: str, key: bytes) -> str:
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def session_subject(session_id: str, key: bytes) -> str:
    """The key of an anonymous visitor's session: pseudonymised like a user id, but in its
    own namespace so a session id can never collide with a user id."""
    return pseudonymise(f"session:{session_id}", key)


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of HMAC-SHA256, so Spark can compute it with sha2()."""
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK_SIZE, b"\0")
    inner = bytes(b ^ 0x36 for b in key)
    outer = bytes(b ^ 0x5C for b in key)
    return inner, outer
