"""A publication's metadata (the ``KeyLayout.meta`` hash) as one typed shape: ``go_live``
writes it with ``to_hash`` and the Reader reads it with ``from_hash``, so what publish writes
and what the API understands cannot drift apart.

Versioned like the values (``META_CODEC``, in the hash as ``meta_codec``): a hash without it is
an older publication (no weights: the ranker's defaults), one of a newer codec is refused
rather than half-understood.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from recolake.onlinestore.codecs import CODEC_VERSION
from recolake.ranking import Weights

META_CODEC = "1"

#: Where a publication's blend weights came from: the evaluation's choice for the published
#: model version (its registry tag ``tracking.SERVED_WEIGHTS_TAG``), or the ranker's defaults
#: (the version carried no weights).
WeightsSource = Literal["evaluation", "default"]
WEIGHTS_SOURCES: tuple[str, ...] = ("evaluation", "default")

#: Hash fields with a typed attribute; everything else a caller adds (users, items, counts)
#: is kept as informational ``stats``.
TYPED_FIELDS = (
    "meta_codec",
    "version",
    "buckets",
    "model_version",
    "ds",
    "published_at",
    "codec",
    "index_blocks",
    "index_width",
    "weights",
    "weights_source",
)


@dataclass(frozen=True)
class PublicationMeta:
    """What the API needs to read one publication, and what it was made of."""

    version: str
    buckets: int = 1
    model_version: str | None = None
    ds: str | None = None
    published_at: str | None = None
    #: Codec of the per-user lists (codecs.CODEC_VERSION or COMPACT_CODEC_VERSION).
    codec: str = CODEC_VERSION
    index_blocks: int = 0
    index_width: int = 0
    #: The blend weights the API ranks this publication's lists with.
    weights: Weights = field(default_factory=Weights)
    weights_source: WeightsSource = "default"
    #: Informational counts (users, items, neighbours_<kind>, ...), as strings.
    stats: Mapping[str, str] = field(default_factory=dict)

    def to_hash(self) -> dict[str, str]:
        fields = {k: str(v) for k, v in self.stats.items() if k not in TYPED_FIELDS}
        fields.update(
            meta_codec=META_CODEC,
            version=self.version,
            buckets=str(self.buckets),
            codec=self.codec,
            index_blocks=str(self.index_blocks),
            index_width=str(self.index_width),
            weights=self.weights.to_json(),
            weights_source=self.weights_source,
        )
        for name in ("model_version", "ds", "published_at"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields

    @classmethod
    def from_hash(cls, version: str, fields: Mapping[str, str]) -> PublicationMeta:
        """The meta of ``version`` from its hash (empty: a publication with no meta, read
        with the defaults). ValueError on a newer codec or malformed weights."""
        codec = fields.get("meta_codec")
        if codec is not None and codec != META_CODEC:
            raise ValueError(
                f"publication {version} has meta codec {codec!r}; this reader knows "
                f"{META_CODEC!r} (upgrade the API before publishing with a newer job)"
            )
        payload = fields.get("weights")
        weights = Weights.from_json(payload) if payload else Weights()
        source = fields.get("weights_source") or ("evaluation" if payload else "default")
        if source not in WEIGHTS_SOURCES:
            raise ValueError(f"publication {version}: unknown weights_source {source!r}")
        return cls(
            version=version,
            buckets=int(fields.get("buckets") or 1),
            model_version=fields.get("model_version"),
            ds=fields.get("ds"),
            published_at=fields.get("published_at"),
            codec=fields.get("codec") or CODEC_VERSION,
            index_blocks=int(fields.get("index_blocks") or 0),
            index_width=int(fields.get("index_width") or 0),
            weights=weights,
            weights_source=source,  # type: ignore[arg-type]
            stats={k: v for k, v in fields.items() if k not in TYPED_FIELDS},
        )
