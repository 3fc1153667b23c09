"""Online experiments: one declared experiment, its variants, and who sees which.

Declared in a small JSON or TOML file named by the setting ``experiments_file`` (unset: no
experiment; every response says variant "default")::

    name = "popular-boost"            # reported in every response's `experiment`
    salt = "2026-12"                  # a new salt reshuffles everyone
    [[variants]]
    name = "control"
    share = 0.5                       # shares sum to 1
    [[variants]]
    name = "more-popular"
    share = 0.5
    weights = { popular = 0.8 }       # partial recolake.ranking.Weights, over the base weights
    publication = "2026-12-01.m7.ab12cd34"   # optional: a publication version kept in Redis

Assignment is a pure function of the salt and the subject (the real-time subject
``u:<pseudonymised user key>``, or ``s:<pseudonymised session>`` for an anonymous visitor):
sha256 -> a bucket in [0, 1) -> the variant whose cumulative share first exceeds it. No I/O
and no state, so every API process (and a restart, and the attribution job) assigns a subject
the same variant, and the hot path spends no Redis round trip on it.

Pure Python: imports neither redis nor pyspark.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recolake.ranking import Weights

#: What a response says when no experiment applies (none declared, or no subject to assign).
DEFAULT_VARIANT = "default"
#: How far the shares may sum from 1 (they are written by hand, in decimals).
SHARE_TOLERANCE = 1e-6
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EXPERIMENT_KEYS = {"name", "salt", "variants", "description"}
_VARIANT_KEYS = {"name", "share", "weights", "publication", "description"}


class ExperimentConfigError(ValueError):
    """The experiments file is unreadable or breaks a rule: raised at start-up, with the file
    and what is wrong."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    #: Blend weights this variant changes (names of recolake.ranking.WEIGHT_NAMES).
    weights: Mapping[str, float] = field(default_factory=dict)
    #: A publication version to serve instead of the live one (falls back to live if absent).
    publication: str | None = None

    def apply(self, weights: Weights) -> Weights:
        """``weights`` with this variant's changes."""
        if not self.weights:
            return weights
        return Weights.from_mapping({**weights.as_dict(), **self.weights})


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    variants: tuple[Variant, ...]
    _bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bounds, total = [], 0.0
        for variant in self.variants:
            total += variant.share
            bounds.append(total)
        object.__setattr__(self, "_bounds", tuple(bounds))

    def bucket(self, subject: str) -> float:
        """The subject's place in [0, 1) for this experiment (sha256 of salt and subject)."""
        digest = hashlib.sha256(f"{self.salt}\0{subject}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def assign(self, subject: str) -> Variant:
        b = self.bucket(subject)
        for variant, bound in zip(self.variants, self._bounds, strict=True):
            if b < bound:
                return variant
        # shares summing to 1 - epsilon: the last variant with a share takes the rest
        return next(v for v in reversed(self.variants) if v.share > 0)


@dataclass(frozen=True)
class Assignment:
    """Which experiment and variant one request is served under, and for which subject."""

    experiment: Experiment | None
    variant: Variant | None
    subject: str | None

    @property
    def experiment_name(self) -> str | None:
        return self.experiment.name if self.variant is not None and self.experiment else None

    @property
    def variant_name(self) -> str:
        return self.variant.name if self.variant is not None else DEFAULT_VARIANT


def assign(experiment: Experiment | None, subject: str | None) -> Assignment:
    """The request's assignment: none without an experiment or without a subject (a visitor
    with neither user nor session id cannot be kept in one variant)."""
    if experiment is None or subject is None:
        return Assignment(experiment, None, subject)
    return Assignment(experiment, experiment.assign(subject), subject)


# --- the file ---------------------------------------------------------------------------


def load(path: str | Path) -> Experiment:
    """Read and validate an experiments file (``.toml``, else JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentConfigError(f"experiments file {path}: cannot read it: {exc}") from exc
    try:
        doc = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ExperimentConfigError(f"experiments file {path}: not valid {kind}: {exc}") from exc
    return parse(doc, source=str(path))


def parse(doc: object, source: str = "experiments") -> Experiment:
    """Validate a declared experiment (the file's content as a mapping)."""

    def fail(message: str) -> ExperimentConfigError:
        return ExperimentConfigError(f"experiments file {source}: {message}")

    if not isinstance(doc, Mapping):
        raise fail(f"expected a table/object at the top, got {type(doc).__name__}")
    unknown = set(doc) - _EXPERIMENT_KEYS
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)} (known: {sorted(_EXPERIMENT_KEYS)})")
    name = _name(doc.get("name"), "name", fail)
    salt = doc.get("salt")
    if not isinstance(salt, str) or not salt.strip():
        raise fail("'salt' must be a non-empty string (it decides who sees which variant)")
    raw = doc.get("variants")
    if not isinstance(raw, list) or not raw:
        raise fail("'variants' must be a non-empty list")
    variants = tuple(_variant(v, i, fail) for i, v in enumerate(raw))
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise fail(f"variant names must be unique, repeated: {duplicates}")
    total = math.fsum(v.share for v in variants)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise fail(
            f"variant shares must sum to 1, they sum to {total:g} "
            f"({', '.join(f'{v.name}={v.share:g}' for v in variants)})"
        )
    return Experiment(name=name, salt=salt, variants=variants)


def _name(value: object, what: str, fail) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise fail(f"{what} {value!r} must match {NAME_PATTERN.pattern}")
    return value


def _variant(doc: object, index: int, fail) -> Variant:
    where = f"variants[{index}]"
    if not isinstance(doc, Mapping):
        raise fail(f"{where} must be a table/object, got {type(doc).__name__}")
    unknown = set(doc) - _VARIANT_KEYS
    if unknown:
        raise fail(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_VARIANT_KEYS)})")
    name = _name(doc.get("name"), f"{where}.name", fail)
    if name == DEFAULT_VARIANT:
        raise fail(f"{where}: {DEFAULT_VARIANT!r} is reserved (responses outside any experiment)")
    share = doc.get("share")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise fail(f"{where} ({name}): 'share' must be a number in [0, 1], got {share!r}")
    weights = doc.get("weights") or {}
    if not isinstance(weights, Mapping):
        raise fail(f"{where} ({name}): 'weights' must be a table/object of blend weights")
    try:
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in weights.values()):
            raise ValueError(f"blend weights must be numbers: {dict(weights)}")
        Weights.from_mapping(weights)
    except ValueError as exc:
        raise fail(f"{where} ({name}): {exc}") from exc
    publication = doc.get("publication")
    if publication is not None and (not isinstance(publication, str) or not publication.strip()):
        raise fail(f"{where} ({name}): 'publication' must be a publication version string")
    return Variant(
        name=name,
        share=float(share),
        weights={k: float(v) for k, v in weights.items()},
        publication=publication,
    )
