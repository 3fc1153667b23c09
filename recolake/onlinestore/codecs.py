"""Encoders and decoders of every value the online store holds, versioned: a publication's
meta records ``codec`` (CODEC_VERSION), and readers decode with the codec it names."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

CODEC_VERSION = "1"

_COMPACT = (",", ":")


def encode_items(items: Sequence[tuple[str, float]]) -> str:
    """A ranked list of (item_id, score): ``[["i1",0.9],["i2",0.5]]``."""
    return json.dumps(
        [[item, round(float(score), 6)] for item, score in items], separators=_COMPACT
    )


def decode_items(payload: str | None) -> list[tuple[str, float]]:
    if not payload:
        return []
    return [(str(item), float(score)) for item, score in json.loads(payload)]


def encode_item_info(
    title: str | None, category: str | None, available: bool, price: float | None = None
) -> str:
    """A catalog entry: ``{"title", "category", "available"[, "price"]}``. ``price`` only
    when known (a finite number): entries without it are what publications before prices
    wrote, and ``decode_price`` reads both as None."""
    doc: dict[str, object] = {"title": title, "category": category, "available": bool(available)}
    price = decode_price(price)
    if price is not None:
        doc["price"] = price
    return json.dumps(doc, separators=_COMPACT, ensure_ascii=False)


def decode_price(value: object) -> float | None:
    """A stored price as a float, or None when absent or not a finite number (a bool is not
    a price): a bad value must not break the entry its title and availability are in."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def encode_document(doc: object) -> str:
    """A real-time document (recent list, affinity, trending): compact JSON."""
    return json.dumps(doc, separators=_COMPACT)


# --- compact per-user lists (codec "2") --------------------------------------------------
# A published user list is a ranked list of ~50 items. As JSON ([["22423",0.61],...]) it
# costs ~1.1 kB of Redis memory per user; here it is the items' positions in the
# publication's own item index (``width`` bytes each, little-endian) followed by one byte per
# score (linear between the list's min and max, which lead the value as two float32s).
# Readers only need the order (the blend fuses by rank), and get scores to 1/255 of the range.

COMPACT_CODEC_VERSION = "2"
#: Item ids per block of a publication's item index (one string key each, cached by readers).
INDEX_BLOCK = 4096
_HEADER = struct.Struct("<Bff")  # width, max score, min score


def index_width(n_items: int) -> int:
    """Bytes per item position for an index of ``n_items`` (2 up to 65,536, 3 up to 16.7M)."""
    for width in (2, 3, 4):
        if n_items <= 1 << (8 * width):
            return width
    raise ValueError(f"an index of {n_items} items does not fit 4 bytes per position")


def encode_ranked_positions(positions: Sequence[int], scores: Sequence[float], width: int) -> bytes:
    """``positions`` (in rank order) and their ``scores`` as one compact value."""
    if len(positions) != len(scores):
        raise ValueError("positions and scores differ in length")
    top = float(max(scores, default=0.0))
    bottom = float(min(scores, default=0.0))
    span = top - bottom
    body = b"".join(int(p).to_bytes(width, "little") for p in positions)
    levels = bytes(
        255 if span <= 0 else max(0, min(255, round((float(s) - bottom) / span * 255)))
        for s in scores
    )
    return _HEADER.pack(width, top, bottom) + body + levels


def decode_ranked_positions(payload: bytes | None) -> list[tuple[int, float]]:
    """(position, approximate score) pairs in rank order."""
    if not payload:
        return []
    width, top, bottom = _HEADER.unpack_from(payload)
    body = payload[_HEADER.size :]
    n = len(body) // (width + 1)
    if n * (width + 1) != len(body):
        raise ValueError("compact list of inconsistent length")
    span = top - bottom
    levels = body[n * width :]
    return [
        (
            int.from_bytes(body[i * width : (i + 1) * width], "little"),
            bottom + span * levels[i] / 255,
        )
        for i in range(n)
    ]


def encode_positions(positions: Sequence[int], width: int) -> bytes:
    """A set of items (a user's purchases) as their positions in the publication's item
    index, ascending: one byte of ``width``, then ``width`` bytes per item (little-endian)."""
    body = b"".join(int(p).to_bytes(width, "little") for p in sorted(set(positions)))
    return bytes((width,)) + body


def decode_positions(payload: bytes | None) -> list[int]:
    if not payload:
        return []
    width, body = payload[0], payload[1:]
    if width < 1 or len(body) % width:
        raise ValueError("compact position set of inconsistent length")
    return [int.from_bytes(body[i : i + width], "little") for i in range(0, len(body), width)]


def encode_hidden(entries: Sequence[tuple[str, float]]) -> str:
    """A subject's hidden items: ``[["i1", ts], ...]``, newest first."""
    return json.dumps([[i, ts] for i, ts in entries], separators=_COMPACT, ensure_ascii=False)


def decode_hidden(payload: str | None) -> list[tuple[str, float]]:
    """(item_id, ts) pairs of a hidden set (malformed entries are an error, not skipped)."""
    if not payload:
        return []
    doc = json.loads(payload)
    if not isinstance(doc, list):
        raise ValueError(f"malformed hidden set: {type(doc).__name__}")
    out = []
    for entry in doc:
        if not isinstance(entry, list) or len(entry) != 2 or not entry[0]:
            raise ValueError(f"malformed hidden entry: {entry!r}")
        out.append((str(entry[0]), float(entry[1] or 0.0)))
    return out


def encode_index_block(item_ids: Sequence[str]) -> str:
    """One block of the publication's item index: the ids in position order."""
    return json.dumps(list(item_ids), separators=_COMPACT, ensure_ascii=False)


def decode_index_block(payload: str | None) -> list[str]:
    if payload is None:
        raise ValueError("item index block missing from the publication")
    return [str(i) for i in json.loads(payload)]


def as_bytes(payload: str | bytes) -> bytes:
    """A binary value read through a client that decodes responses: clients are opened with
    ``encoding_errors="surrogateescape"`` (client.connect), so this is lossless."""
    return payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogateescape")


# --- user profiles (gold.user_profile, GET /v1/users/{user_id}/profile) -------------------

PROFILE_CODEC_VERSION = 1
#: A published profile's fields: gold.user_profile's columns past its keys, same names.
#: ``top_categories`` / ``top_brands`` are [[name, share], ...], largest share first.
PROFILE_FIELDS = (
    "ds",
    "n_events",
    "last_event_time",
    "days_since_last_event",
    "last_purchase_time",
    "days_since_last_purchase",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "segment",
    "top_categories",
    "top_brands",
    "median_price",
    "price_band",
    "preferred_hours",
)


def encode_profile(profile: Mapping[str, Any]) -> str:
    """One user's profile: ``{"v": 1, <PROFILE_FIELDS>}``, compact JSON (shares to 4
    decimals, money to cents). Exactly PROFILE_FIELDS: a missing or unknown field is a
    ValueError, so the job and the API cannot drift apart silently."""
    names = set(profile)
    if names != set(PROFILE_FIELDS):
        missing, extra = sorted(set(PROFILE_FIELDS) - names), sorted(names - set(PROFILE_FIELDS))
        raise ValueError(f"profile fields: missing {missing}, unknown {extra}")
    doc: dict[str, object] = {"v": PROFILE_CODEC_VERSION}
    for name in PROFILE_FIELDS:
        value = profile[name]
        if name in ("top_categories", "top_brands"):
            value = [[str(k), round(float(share), 4)] for k, share in value or ()]
        elif name in ("monetary", "median_price") and value is not None:
            value = round(float(value), 2)
        elif name == "preferred_hours":
            value = [int(h) for h in value or ()]
        doc[name] = value
    return json.dumps(doc, separators=_COMPACT, ensure_ascii=False)


def decode_profile(payload: str | None) -> dict | None:
    """The profile (PROFILE_FIELDS) of an encoded value; None for none; ValueError for a
    codec this reader does not know or a value without the fields."""
    if payload is None:
        return None
    doc = json.loads(payload)
    if not isinstance(doc, dict) or doc.get("v") != PROFILE_CODEC_VERSION:
        raise ValueError(f"profile of unknown codec: {str(payload)[:60]!r}")
    missing = [f for f in PROFILE_FIELDS if f not in doc]
    if missing:
        raise ValueError(f"profile without {missing}")
    return {f: doc[f] for f in PROFILE_FIELDS}


# --- example users (GET /v1/users: the page's user search) ---------------------------------


def encode_example_user(user_id: str, rank: int) -> str:
    """One example user of a publication: ``{"user_id": raw id, "rank": 1..n}`` (1: the
    most active)."""
    return json.dumps(
        {"user_id": user_id, "rank": int(rank)}, separators=_COMPACT, ensure_ascii=False
    )


def decode_example_users(entries: Mapping[str, str]) -> list[str]:
    """The raw ids of an examples hash (user key -> encoded entry), most active first;
    ValueError for an entry without an id (a contract break, not skipped)."""
    ranked = []
    for payload in entries.values():
        doc = json.loads(payload)
        if not isinstance(doc, dict) or not isinstance(doc.get("user_id"), str):
            raise ValueError(f"malformed example user: {str(payload)[:60]!r}")
        ranked.append((int(doc.get("rank") or 0), doc["user_id"]))
    return [user_id for _, user_id in sorted(ranked)]


# --- merchandising rules (recolake/rules.py) ----------------------------------------------

RULES_CODEC_VERSION = 1


def encode_rules(rules: Sequence[dict], author: str | None, updated_at: str) -> str:
    """One stored rules version (its number is the hash field it is stored under):
    ``{"codec": 1, "author", "updated_at", "rules": [Rule.as_dict(), ...]}``."""
    doc = {"codec": RULES_CODEC_VERSION, "author": author, "updated_at": updated_at}
    return json.dumps({**doc, "rules": list(rules)}, separators=_COMPACT, ensure_ascii=False)


def decode_rules(payload: str) -> dict:
    """The stored document; ValueError for a codec this reader does not know."""
    doc = json.loads(payload)
    if not isinstance(doc, dict) or doc.get("codec") != RULES_CODEC_VERSION:
        raise ValueError(f"rules document of unknown codec: {str(payload)[:60]!r}")
    return doc
