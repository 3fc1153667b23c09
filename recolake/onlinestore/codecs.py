"""Encoders and decoders of every value the online store holds, versioned: a publication's
meta records ``codec`` (CODEC_VERSION), and readers decode with the codec it names."""

from __future__ import annotations

import json
from collections.abc import Sequence

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


def encode_item_info(title: str | None, category: str | None, available: bool) -> str:
    """A catalog entry: ``{"title", "category", "available"}``."""
    return json.dumps(
        {"title": title, "category": category, "available": bool(available)},
        separators=_COMPACT,
        ensure_ascii=False,
    )


def encode_document(doc: object) -> str:
    """A real-time document (recent list, affinity, trending): compact JSON."""
    return json.dumps(doc, separators=_COMPACT)
