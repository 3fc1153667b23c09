"""The live catalog overlay: item updates from PUT /v1/items applied over the published
catalog at once, until the nightly that includes them is published.

Layout (keys.KeyLayout): ``catalog:items:<bucket>`` hashes (item_id -> encoded entry, the
whole entry: a PUT replaces an item's entry, as silver's latest row replaces the item) and
one ``catalog:version`` counter, INCRed after the entries are written.

The hot path pays no extra round trip for it: the Reader reads the counter inside the
snapshot's pipeline (one more GET in a trip it makes anyway), drops its cached catalog entries
when the counter moved, and looks an entry up in the overlay next to the published one in the
same pipelined HGETs (only for items it has not cached). An update is therefore served from
the request after the INCR, by every API process.

New items get content neighbours at PUT time: the publication carries the content model's
terms (``pub:<v>:terms:<bucket>``: each term's idf and the items with its largest weights,
from gold.item_content_terms), so :func:`content_neighbours` tokenises the item's text as the
model does (models/content.py item_text + Spark's RegexTokenizer; stop words are not in the
vocabulary), builds its unit TF-IDF vector and sums the dot products through the terms'
lists: a handful of HGETs and a few thousand multiplications, whatever the catalog's size.
The list goes to ``catalog:nbr:<bucket>``, which the Reader serves for an item the
publication has no content neighbours for.
"""

from __future__ import annotations

import heapq
import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from recolake.onlinestore.codecs import decode_price
from recolake.onlinestore.keys import KeyLayout
from recolake.ranking import ItemInfo

#: The neighbour kind PUT /v1/items computes live for new items.
LIVE_NEIGHBOUR_KIND = "content"

#: Hashes the overlay is spread over (fixed: readers and writers must agree on it).
OVERLAY_BUCKETS = 16


def overlay_bucket(item_id: str) -> int:
    return zlib.crc32(item_id.encode("utf-8")) % OVERLAY_BUCKETS


@dataclass(frozen=True)
class CatalogEntry:
    """One item as PUT /v1/items sent it (validated by the API's schema)."""

    item_id: str
    title: str
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    available: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)
    updated_at: str = ""  # ISO-8601 UTC, the API's clock

    def encode(self) -> str:
        doc = asdict(self)
        del doc["item_id"]  # the hash field
        doc["attributes"] = dict(self.attributes)
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, item_id: str, payload: str | bytes | None) -> CatalogEntry | None:
        if not payload:
            return None
        doc = json.loads(payload)
        if not isinstance(doc, dict) or not doc.get("title"):
            raise ValueError(f"malformed catalog overlay entry for {item_id!r}")
        return cls(
            item_id=item_id,
            title=str(doc["title"]),
            category=doc.get("category"),
            brand=doc.get("brand"),
            price=doc.get("price"),
            available=bool(doc.get("available", True)),
            attributes={str(k): str(v) for k, v in (doc.get("attributes") or {}).items()},
            updated_at=str(doc.get("updated_at") or ""),
        )

    def info(self) -> ItemInfo:
        """What the ranker reads of it (titles in reasons, category, availability) and what
        responses carry (price): a PUT's new price is served from the next request."""
        return ItemInfo(self.title, self.category, self.available, decode_price(self.price))


def merged_info(published: ItemInfo | None, overlay: str | bytes | None, item_id: str):
    """The entry the API serves: the overlay's when there is one (it is newer than any
    publication still live), else the published one."""
    entry = CatalogEntry.decode(item_id, overlay)
    return entry.info() if entry is not None else published


async def write_entries(client, layout: KeyLayout, entries: Sequence[CatalogEntry]) -> int:
    """Write the entries, then bump the version (only once every HSET is acknowledged, so a
    reader that sees the new version reads the new entries); returns the new version."""
    by_bucket: dict[int, dict[str, str]] = {}
    for entry in entries:
        by_bucket.setdefault(overlay_bucket(entry.item_id), {})[entry.item_id] = entry.encode()
    async with client.pipeline(transaction=False) as pipe:
        for bucket, mapping in by_bucket.items():
            pipe.hset(layout.catalog_items(bucket), mapping=mapping)
        await pipe.execute()
    return int(await client.incr(layout.catalog_version))


async def read_entries(client, layout: KeyLayout, item_ids: Sequence[str]):
    """item_id -> CatalogEntry (None when the overlay has none): for tests and operators."""
    async with client.pipeline(transaction=False) as pipe:
        for item in item_ids:
            pipe.hget(layout.catalog_items(overlay_bucket(item)), item)
        replies = await pipe.execute()
    return {i: CatalogEntry.decode(i, p) for i, p in zip(item_ids, replies, strict=True)}


# --------------------------------------------------------------------------- new items' content


def encode_term(idf: float, items: Sequence[tuple[str, float]]) -> str:
    """One term of the published content terms: ``{"idf": x, "items": [[id, w], ...]}``."""
    return json.dumps(
        {"idf": round(float(idf), 6), "items": [[i, round(float(w), 6)] for i, w in items]},
        separators=(",", ":"),
    )


def decode_term(payload: str | bytes | None) -> tuple[float, list[tuple[str, float]]] | None:
    if not payload:
        return None
    doc = json.loads(payload)
    return float(doc["idf"]), [(str(i), float(w)) for i, w in doc["items"]]


#: Java's \w, which Spark's tokenizer and regexp_replace use, is ASCII only.
_SPLIT = re.compile(r"[^\w]+", re.ASCII)
_NON_WORD = re.compile(r"\W+", re.ASCII)


def _token(prefix: str, value: str | None) -> list[str]:
    token = _NON_WORD.sub("_", (value or "").strip().lower())
    return [prefix + token] if token else []


def text_terms(title: str, category: str | None, brand: str | None) -> list[str]:
    """The words models.content.item_text + fit_tfidf make of an item (lower case, split on
    non-word characters, at least 2 characters; ``cat_<category>``, ``brand_<brand>``)."""
    text = " ".join(
        [title, *_token("cat_", category), *([brand] if brand else []), *_token("brand_", brand)]
    )
    return [t for t in _SPLIT.split(text.lower()) if len(t) >= 2]


def term_bucket(term: str, buckets: int) -> int:
    """The publication's hash (of ``buckets``, as its other per-item hashes) holding a term."""
    return KeyLayout.bucket_of(term, buckets)


def score_terms(
    words: Sequence[str],
    terms: Mapping[str, tuple[float, list[tuple[str, float]]] | None],
    *,
    top_n: int,
    exclude: str | None = None,
) -> list[tuple[str, float]]:
    """Top-``top_n`` (item, cosine) of the item whose words are ``words``: its vector is count
    x idf over the words the model knows (others are dropped, as CountVectorizer does),
    L2-normalised; each candidate's score is the sum over shared terms of both weights."""
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    weights = {w: n * terms[w][0] for w, n in counts.items() if terms.get(w) and terms[w][0] > 0}
    norm = math.sqrt(sum(v * v for v in weights.values()))
    if not norm:
        return []
    scores: dict[str, float] = {}
    for word, weight in weights.items():
        q = weight / norm
        for item, w in terms[word][1]:  # type: ignore[index]
            scores[item] = scores.get(item, 0.0) + q * w
    scores.pop(exclude, None)
    best = heapq.nlargest(top_n, scores.items(), key=lambda e: (e[1], e[0]))
    return [(i, min(round(v, 6), 1.0)) for i, v in best if v > 0]


async def content_neighbours(
    client,
    layout: KeyLayout,
    version: str,
    buckets: int,
    entries: Sequence[CatalogEntry],
    *,
    top_n: int,
) -> dict[str, list[tuple[str, float]]]:
    """Each entry's content neighbours against publication ``version``'s content terms (one
    pipeline: an HGET per distinct word of the batch); empty lists when it carries none."""
    words = {e.item_id: text_terms(e.title, e.category, e.brand) for e in entries}
    distinct = list(dict.fromkeys(w for ws in words.values() for w in ws))
    terms: dict[str, tuple[float, list[tuple[str, float]]] | None] = {}
    if distinct:
        async with client.pipeline(transaction=False) as pipe:
            for word in distinct:
                pipe.hget(layout.content_terms(version, term_bucket(word, buckets)), word)
            replies = await pipe.execute()
        terms = {w: decode_term(p) for w, p in zip(distinct, replies, strict=True)}
    return {item: score_terms(ws, terms, top_n=top_n, exclude=item) for item, ws in words.items()}


def encode_neighbours(items: Sequence[tuple[str, float]]) -> str:
    return json.dumps([[i, s] for i, s in items], separators=(",", ":"))


async def write_neighbours(
    client, layout: KeyLayout, lists: Mapping[str, Sequence[tuple[str, float]]]
) -> None:
    """Each item's live content neighbours into the overlay (before the version INCR)."""
    if not lists:
        return
    async with client.pipeline(transaction=False) as pipe:
        for item, items in lists.items():
            pipe.hset(
                layout.catalog_neighbours(overlay_bucket(item)), item, encode_neighbours(items)
            )
        await pipe.execute()
