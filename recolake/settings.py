"""The one settings object. Every job, the API and the tests read configuration from here.

Values come from environment variables prefixed ``RECOLAKE_`` (nested values use ``__``,
e.g. ``RECOLAKE_EVENT_WEIGHTS__PURCHASE=5``), then from a ``.env`` file, then the defaults
below, which describe a single-machine setup: local Spark, a local lake directory, a local
MLflow store and a Redis on localhost.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _project_root() -> Path:
    """The checkout the single-machine defaults live in: ``RECOLAKE_HOME`` when set, else the
    package's parent folder; imported from a zip (spark-submit --py-files), that parent is
    the zip file, so the working directory stands in (scripts/spark-submit.sh and the
    Airflow DAG set RECOLAKE_HOME)."""
    home = os.environ.get("RECOLAKE_HOME")
    if home:
        return Path(home).resolve()
    root = Path(__file__).resolve().parent.parent
    return root if root.is_dir() else Path.cwd()


PROJECT_ROOT = _project_root()
#: Where the single-machine defaults keep their state (git-ignored).
VAR_DIR = PROJECT_ROOT / "var"

#: Models that can be fused into the published per-user list (settings.personal_models):
#: the ones pipelines/publish.py can list for every user.
PERSONAL_MODELS = ("als", "item_cf", "content", "user_cf")

#: Event types the platform understands, with their default implicit-feedback weights.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "add_to_cart": 3.0,
    "remove_from_cart": 0.0,
    "purchase": 5.0,
    # negative feedback (settings.negative_event_types): weight 0, never a positive signal
    "hide": 0.0,
    "dislike": 0.0,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECOLAKE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    # --- storage -------------------------------------------------------------------------
    lake_root: str = Field(
        default=str(VAR_DIR / "lake"),
        description="Root of the Delta lake: a local path or any Hadoop URI (s3a://, abfss://).",
    )

    # --- Spark ---------------------------------------------------------------------------
    spark_master: str | None = Field(
        default="local[2]",
        description="Spark master URL. Empty/None leaves it to spark-submit --master.",
    )
    spark_shuffle_partitions: int = Field(default=8, ge=1)
    spark_driver_memory: str = "4g"
    jars_dir: str = Field(
        default=str(PROJECT_ROOT / "jars"),
        description="Folder of JVM jars resolved by `make jars` (Delta, Kafka connector).",
    )
    spark_ui_enabled: bool = False

    # --- MLflow --------------------------------------------------------------------------
    mlflow_tracking_uri: str = f"sqlite:///{VAR_DIR / 'mlflow' / 'mlflow.db'}"
    mlflow_artifact_root: str = str(VAR_DIR / "mlflow" / "artifacts")
    mlflow_experiment: str = "recolake-nightly"
    registered_model_name: str = "recolake-als"
    champion_alias: str = "champion"

    # --- Redis / online ------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = Field(default="recolake", pattern=r"^[A-Za-z0-9_.-]+$")
    redis_buckets: int = Field(
        default=64, ge=1, le=16384, description="Hash buckets per published set (spreads keys)."
    )
    publish_grace_seconds: int = Field(
        default=60, ge=0, description="How long a replaced publish stays readable after a switch."
    )
    publish_max_unavailable_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Publish refuses a catalog with more than this share of items unavailable "
        "(a broken import must not go live; the last good publication keeps serving).",
    )
    publish_min_popular_available: int = Field(
        default=10,
        ge=0,
        description="Publish refuses a popular list with fewer available items than this (or "
        "than the list's length, if shorter): the fallback answers would come out short.",
    )
    publish_allow_degraded: bool = Field(
        default=False,
        description="Publish a catalog that fails those checks anyway (logged as a warning).",
    )
    publish_example_users: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="Raw ids of the most active users a publication carries as examples (the "
        "page's user search, GET /v1/users, read token): the only raw user ids Redis holds, "
        "so bounded and small; 0 publishes none.",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    redis_connect_timeout_seconds: float = Field(
        default=0.3, gt=0, description="Every Redis client: TCP connect timeout."
    )
    redis_socket_timeout_seconds: float = Field(
        default=0.3,
        gt=0,
        description="API Redis clients: per-command socket timeout (a stalled Redis answers "
        "503 + Retry-After or the documented fallback within about this long).",
    )
    redis_job_socket_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Jobs' Redis clients (big publish pipelines)."
    )
    redis_pool_size: int = Field(
        default=64, ge=1, description="API: connections per process (a blocking pool)."
    )
    redis_pool_timeout_seconds: float = Field(
        default=0.2, ge=0, description="API: how long a request waits for a free connection."
    )
    api_redis_deadline_seconds: float = Field(
        default=1.0,
        gt=0,
        description="API: the longest one request spends on Redis, all commands and reconnects "
        "included; past it the answer is 503 + Retry-After.",
    )
    api_health_timeout_seconds: float = Field(
        default=0.25, gt=0, description="/healthz: deadline of its Redis PING (503 past it)."
    )
    api_metrics_timeout_seconds: float = Field(
        default=0.25,
        gt=0,
        description="/metrics: deadline of its Redis read of the streaming job's progress "
        "(past it the streaming gauges are left out; /metrics still answers).",
    )
    realtime_user_ttl_hours: float = Field(
        default=30 * 24, gt=0, description="TTL of a user's real-time keys (refreshed by events)."
    )
    realtime_session_ttl_hours: float = Field(
        default=12, gt=0, description="TTL of an anonymous session's real-time keys."
    )

    # --- request-time blend (recolake/ranking.py) ---------------------------------------------
    blend_weight_als: float = Field(default=1.0, ge=0, description="Weight of the ALS list.")
    blend_weight_neighbours: float = Field(
        default=0.8, ge=0, description="Weight of CF neighbours (co_view, bought_together)."
    )
    blend_weight_content: float = Field(
        default=0.5, ge=0, description="Weight of content neighbours of recent items."
    )
    blend_weight_trending: float = Field(default=0.4, ge=0)
    blend_weight_popular: float = Field(default=0.2, ge=0)
    blend_weight_affinity: float = Field(
        default=0.3, ge=0, description="Lift of items in the visitor's current categories."
    )
    blend_recent_anchors: int = Field(
        default=5, ge=0, le=50, description="Recent items whose neighbours are candidates."
    )
    blend_candidates_per_source: int = Field(
        default=30, ge=1, le=500, description="Items taken from each list (ALS, popular, ...)."
    )
    max_per_category: int | None = Field(
        default=3, ge=1, description="Diversity: at most this many items per category in top k."
    )
    negative_event_types: list[str] = Field(
        default_factory=lambda: ["hide", "dislike"],
        description="Negative feedback: an item a subject sent one of these events for is "
        "never served to that subject again (the streaming job keeps a per-subject hidden set "
        "with the subject's TTL) and offline it zeroes that user's strength for the item. "
        "Each must be one of event_weights (weight 0 there).",
    )
    exclude_purchased_default: bool = Field(
        default=True,
        description="`exclude_purchased` of a request that does not say: drop items the user "
        "bought (published purchases plus real-time ones) from every source. Groceries (bought "
        "again and again): false.",
    )
    hidden_max_items: int = Field(
        default=500, ge=1, description="Hidden items kept per subject (newest first)."
    )
    purchased_max_items: int = Field(
        default=1000,
        ge=0,
        description="Published purchased items per user (the most recently bought first); 0: "
        "publish none.",
    )
    experiments_file: str | None = Field(
        default=None,
        description="JSON or TOML file declaring the online experiment (recolake/experiments.py: "
        "name, salt, variants with shares, weights and/or publication); read and validated when "
        "the API starts. Unset: no experiment.",
    )
    rules_file: str | None = Field(
        default=None,
        description="JSON or TOML file of merchandising rules (recolake/rules.py: boost, bury, "
        "pin); validated when the API starts and stored in Redis as version 1 if Redis holds "
        "no rules yet (after that, PUT /v1/rules or `recolake rules --load FILE`). Unset: none.",
    )
    rules_history: int = Field(
        default=50, ge=1, le=1000, description="Rules versions kept in Redis for audit."
    )
    online_cache_items: int = Field(
        default=200_000, ge=0, description="Per-process cache of published catalog/neighbours."
    )
    api_gc_gen0_threshold: int = Field(
        default=20_000,
        ge=0,
        description="API processes: Python's gen-0 GC threshold (default 700). With the start-up "
        "heap frozen (gc.freeze) and rarer collections, p99 drops ~3x under load. 0 = leave.",
    )

    # --- real time: event intake (online/routers/events.py) and streaming ----------------
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required by writes (POST /v1/events); reads stay open. "
        "Unset = writes are refused (403).",
    )
    api_read_token: SecretStr | None = Field(
        default=None,
        description="When set, every /v1 read needs `Authorization: Bearer <read or write "
        "token>` (recommendations expose a user's recent history). Unset = reads are open.",
    )
    event_log: Literal["local", "kafka"] = Field(
        default="local", description="Where accepted events go: a landing dir, or Kafka."
    )
    landing_dir: str = Field(
        default=str(VAR_DIR / "landing" / "events"),
        description="Local event log: one JSON-lines file per accepted request (atomic).",
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic: str = "recolake-events"
    kafka_delivery_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Kafka event log: how long a POST waits for the broker's acks (acks=all) "
        "before it fails (the producer stops retrying them then too).",
    )
    impressions_enabled: bool = Field(
        default=True,
        description="Log every served list (impression) to the event log, for attribution.",
    )
    impressions_flush_ms: float = Field(
        default=20.0,
        gt=0,
        description="Impressions group commit: a list waits at most this long for others to "
        "share its event-log append (one fsync or Kafka round trip per group).",
    )
    impressions_batch_max: int = Field(
        default=256, ge=1, description="Impressions group commit: records per append at most."
    )
    events_max_batch: int = Field(default=500, ge=1, description="Events per POST at most.")
    events_max_body_bytes: int = Field(
        default=1_000_000, ge=1024, description="Request body limit, checked before parsing."
    )
    events_max_future_seconds: int = Field(
        default=300, ge=0, description="How far in the future an event timestamp may be."
    )
    events_min_timestamp: datetime = Field(
        default=datetime(1970, 1, 1, tzinfo=UTC),
        description="Events before this are rejected (per-event reason); no offset = UTC. Not "
        "before 1970-01-01, the jobs' own bound (recolake.validation.EARLIEST_TIMESTAMP).",
    )
    stream_checkpoint_dir: str = Field(default=str(VAR_DIR / "checkpoints" / "streaming"))
    stream_trigger_seconds: float = Field(
        default=0.25,
        gt=0,
        description="Trigger of the Redis query (freshness: an event waits half of it on "
        "average; an idle trigger costs one listing of the event log, ~35 ms).",
    )
    stream_lake_trigger_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Trigger of the bronze query: a Delta commit takes ~2 s of the cores the "
        "Redis query needs, so fewer, larger commits (and files) keep freshness's tail down.",
    )
    stream_max_files_per_trigger: int = Field(default=200, ge=1)
    stream_shuffle_partitions: int = Field(
        default=2, ge=1, description="Fixed in the checkpoint at the first run."
    )
    stream_watermark: str = Field(default="10 minutes", description="Event-time watermark.")
    recent_n: int = Field(default=20, ge=1, le=500, description="Recent items per subject.")
    session_window_minutes: int = Field(default=30, ge=1)
    trending_window_minutes: int = Field(default=60, ge=1)
    trending_top_n: int = Field(default=100, ge=1)
    affinity_half_life_hours: float = Field(default=24.0, gt=0)
    stream_dedupe_ttl_seconds: int = Field(
        default=2 * 86400, ge=60, description="How long an event id is remembered (retries)."
    )
    stream_fault_kill_after_writes: int | None = Field(
        default=None,
        ge=0,
        description="Fault injection (tests only): the streaming job SIGKILLs itself after "
        "this many Redis writes of a batch that has more (inside the batch, before its "
        "marker). Unset in production.",
    )
    landing_retention_hours: float = Field(
        default=24.0,
        gt=0,
        description="Landed event files every streaming query has committed are deleted "
        "after this long (recolake_streaming DAG, prune_landing).",
    )
    catalog_refresh_seconds: int = Field(
        default=600, ge=1, description="How often the streaming job reloads item categories."
    )
    stream_pidfile: str = Field(
        default=str(VAR_DIR / "streaming.pid"),
        description="Pid of the streaming job the recolake_streaming DAG started (log: .log).",
    )
    stream_max_lag_seconds: float = Field(
        default=300.0,
        gt=0,
        description="recolake_streaming alerts when a landed file waits longer than this.",
    )

    # --- privacy -------------------------------------------------------------------------
    pseudonymisation_key: SecretStr | None = Field(
        default=None,
        description="Key of the HMAC-SHA256 that replaces user ids past bronze. Required by "
        "the silver job and the API; `make demo` generates one into .recolake/.",
    )
    erasure_requests_dir: str = Field(
        default=str(VAR_DIR / "erasure" / "requests"),
        description="Where DELETE /v1/users/{id} leaves its durable erasure requests "
        "(pseudonymised keys only) for `recolake forget --pending` (the nightly runs it first).",
    )
    erasure_vacuum_retention_hours: float = Field(
        default=168.0,
        ge=0,
        description="VACUUM retention used by `recolake forget` and `recolake retention`: the "
        "files a DELETE rewrote stay readable by time travel for this long, then are removed "
        "from storage. 0 removes them at once (safe only while no job writes the table).",
    )
    bronze_retention_days: int = Field(
        default=400,
        ge=1,
        description="`recolake retention --ds D` deletes bronze rows ingested before "
        "D minus this many days (raw events are kept no longer than needed).",
    )

    # --- features ------------------------------------------------------------------------
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    decay_half_life_days: float = Field(default=60.0, gt=0)
    popularity_window_days: int = Field(default=30, ge=1)
    profile_top_n: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Categories and brands kept per user in gold.user_profile (and its "
        "published profile), by share of the user's strength.",
    )

    # --- item-item neighbours ----------------------------------------------------------
    neighbours_top_n: int = Field(default=50, ge=1, le=500, description="Neighbours per item.")
    content_terms_per_term: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Items kept per term in the published content terms (gold."
        "item_content_terms): the candidates a new item's content neighbours (PUT /v1/items) "
        "are scored among; more is closer to the nightly's exact cosines, and slower.",
    )
    cf_min_support: int = Field(default=2, ge=1, description="Min co-occurrences of a pair.")
    cf_max_items_per_group: int = Field(
        default=100, ge=2, description="Items kept per user history / basket (bounds the join)."
    )

    # --- user-user neighbours (models/user_cf.py) -----------------------------------------
    user_cf_neighbours: int = Field(
        default=50, ge=1, le=1000, description="Most similar users whose items score a list."
    )
    user_cf_max_users_per_item: int = Field(
        default=100,
        ge=2,
        description="Users an item links as neighbours (its strongest): bounds the user-user "
        "join to max/2 pairs per interaction, so a best-seller does not pair everyone.",
    )

    # --- model ---------------------------------------------------------------------------
    holdout_days: int = Field(default=14, ge=1, description="Last days held out for evaluation.")
    top_k: int = Field(default=50, ge=1, le=500, description="Recommendations published per user.")
    eval_k: int = Field(default=10, ge=1)
    als_rank: int = Field(default=32, ge=1)
    als_max_iter: int = Field(default=10, ge=1)
    als_reg_param: float = Field(default=0.1, ge=0)
    als_alpha: float = Field(default=20.0, gt=0)
    als_seed: int = 42
    als_tune_ranks: list[int] = Field(
        default_factory=lambda: [32, 64],
        description="ALS tuning grid (train): ranks tried on the validation split; "
        "empty = als_rank only. The grid is ranks x reg_params x alphas x max_iters.",
    )
    als_tune_reg_params: list[float] = Field(default_factory=lambda: [0.01, 1.0])
    als_tune_alphas: list[float] = Field(default_factory=lambda: [2.0, 20.0])
    als_tune_max_iters: list[int] = Field(
        default_factory=list, description="Iterations tried; empty = als_max_iter only."
    )
    validation_days: int = Field(
        default=14, ge=1, description="Last days before the hold-out used to tune and weigh."
    )
    primary_metric: Literal["ndcg", "precision", "recall", "map", "hit_rate"] = Field(
        default="ndcg", description="What a candidate must not lose on to become champion."
    )
    candidate_alias: str = "candidate"
    eval_depth: int = Field(
        default=50, ge=1, le=500, description="List depth each model gives the offline hybrid."
    )
    personal_models: list[str] = Field(
        default_factory=lambda: ["als", "item_cf", "content"],
        description="Models fused (weights chosen on validation) into each user's published "
        "list, the blend's personal source (popularity and trending are sources of their own).",
    )
    hybrid_models: list[str] = Field(
        default_factory=lambda: ["als", "item_cf", "content", "popularity"],
        description="Models the offline hybrid fuses (weights chosen on validation).",
    )
    hybrid_weight_step: float = Field(
        default=0.25, gt=0, le=1, description="Grid step of the hybrid's weight search."
    )
    served_tuning_max_users: int = Field(
        default=5000,
        ge=1,
        description="Validation users (a seeded sample) the served blend's weight grid is "
        "scored on: bounds the tuning's cost (one blend per user and grid point).",
    )
    trending_window_days: int = Field(default=7, ge=1, description="Trending baseline window.")
    trending_half_life_days: float = Field(default=2.0, gt=0)
    reports_dir: str = Field(
        default=str(VAR_DIR / "reports"),
        description="Where evaluate writes <ds>/evaluation.json and the HTML report.",
    )
    attribution_window_hours: float = Field(
        default=24.0,
        gt=0,
        description="`recolake experiments`: a view, cart or purchase of a recommended item "
        "is credited to the impression that showed it at most this many hours before.",
    )

    def als_grid(self) -> list[dict[str, float | int]]:
        """The ALS tuning grid as parameter dicts (one point when tuning is off)."""
        return [
            {"rank": r, "reg_param": g, "alpha": a, "max_iter": i}
            for r in (self.als_tune_ranks or [self.als_rank])
            for g in (self.als_tune_reg_params or [self.als_reg_param])
            for a in (self.als_tune_alphas or [self.als_alpha])
            for i in (self.als_tune_max_iters or [self.als_max_iter])
        ]

    @field_validator("events_min_timestamp")
    @classmethod
    def _min_timestamp_utc(cls, value: datetime) -> datetime:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value < datetime(1970, 1, 1, tzinfo=UTC):
            raise ValueError("events_min_timestamp must not be before 1970-01-01 (the jobs' bound)")
        return value

    @field_validator("personal_models")
    @classmethod
    def _personal_models_known(cls, value: list[str]) -> list[str]:
        """Only models publish can list for every user: a typo would silently drop a source."""
        unknown = sorted(set(value) - set(PERSONAL_MODELS))
        if unknown or not value:
            raise ValueError(
                f"personal_models must be a non-empty subset of {list(PERSONAL_MODELS)}, "
                f"got unknown {unknown}"
                if unknown
                else f"personal_models must not be empty (choose from {list(PERSONAL_MODELS)})"
            )
        return value

    @field_validator("event_weights")
    @classmethod
    def _weights_not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if v < 0}
        if bad:
            raise ValueError(f"event weights must be >= 0, got {bad}")
        return value

    @field_validator("negative_event_types")
    @classmethod
    def _negative_types_lower(cls, value: list[str]) -> list[str]:
        return [t.strip().lower() for t in value if t.strip()]

    @model_validator(mode="after")
    def _negative_types_accepted(self) -> Settings:
        """Negative feedback types are accepted event types that never count as positive: one
        missing from event_weights is added with weight 0; a positive weight is an error."""
        weights = self.event_weights
        positive = {t: weights[t] for t in self.negative_event_types if weights.get(t, 0.0) > 0}
        if positive:
            raise ValueError(f"negative_event_types must weigh 0 in event_weights: {positive}")
        for event_type in self.negative_event_types:
            self.event_weights.setdefault(event_type, 0.0)
        return self

    def non_anchor_event_types(self) -> frozenset[str]:
        """Event types that never make an item an anchor of the blend (recolake.ranking
        ``anchors``): weight <= 0 (remove_from_cart) and the negative feedback types."""
        weak = {t for t, w in self.event_weights.items() if w <= 0}
        return frozenset(weak | set(self.negative_event_types))

    def require_pseudonymisation_key(self) -> bytes:
        """The HMAC key as bytes, or a clear error telling how to set it."""
        if self.pseudonymisation_key is None or not self.pseudonymisation_key.get_secret_value():
            raise RuntimeError(
                "RECOLAKE_PSEUDONYMISATION_KEY is not set: user ids cannot be pseudonymised. "
                "Set it to a long random secret (for example `openssl rand -hex 32`)."
            )
        return self.pseudonymisation_key.get_secret_value().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
