"""What the dashboard page (/ui) shows, as one JSON document: the live publication, the
streaming job's last batches, Redis memory, and the last nightly / evaluation / experiments
runs from MLflow (their tags say which: recolake.tracking.STEP_TAG).

MLflow is read with its client in a worker thread and cached for ``MLFLOW_TTL`` seconds: the
page polls, the tracking store need not be asked every time. Nothing here imports pyspark
(experiment results come from the experiments run's ``experiment_results.json`` artifact,
the rows it wrote to gold.experiment_results)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from recolake.onlinestore.reader import NothingPublishedError, Reader
from recolake.settings import Settings
from recolake.timing import STEP_SECONDS, TOTAL_SECONDS

log = logging.getLogger("recolake.api")

#: Seconds one read of the MLflow runs is reused for.
MLFLOW_TTL = 30.0
#: Image files of a report the page may show (served by ``report_file``).
REPORT_IMAGES = (".png", ".svg")

_mlflow_cache: dict[str, tuple[float, dict[str, Any]]] = {}


async def dashboard(reader: Reader, settings: Settings) -> dict[str, Any]:
    """The whole dashboard document (each part degrades to null/empty on its own)."""
    publication, streaming, memory = await asyncio.gather(
        _publication(reader), _streaming(reader), _redis_memory(reader)
    )
    runs = await asyncio.to_thread(mlflow_runs, settings)
    return {
        "publication": publication,
        "streaming": streaming,
        "redis_memory": memory,
        **runs,
        "report_images": report_images(settings, (runs.get("nightly") or {}).get("ds")),
    }


async def _publication(reader: Reader) -> dict[str, Any] | None:
    try:
        pub = await reader.publication()
    except NothingPublishedError:
        return None
    return {
        "version": pub.version,
        "model_version": pub.model_version,
        "ds": pub.ds,
        "published_at": pub.published_at,
        "weights": pub.weights.as_dict(),
        "weights_source": pub.weights_source,
        "users": _int(pub.stats.get("users")),
        "items": _int(pub.stats.get("items")),
        "stats": dict(pub.stats),
    }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _streaming(reader: Reader) -> list[dict[str, Any]]:
    now = time.time()
    progress = await reader.stream_progress()
    return [
        {
            "query": query,
            "batch_id": p.batch_id,
            "rows": p.rows,
            "duration_seconds": p.duration_seconds,
            "ended_at": p.ended_at,
            "lag_seconds": p.lag_seconds,
            # freshness: how long ago the last batch ended (a stopped job grows this)
            "age_seconds": max(0.0, now - p.ended_at),
        }
        for query, p in sorted(progress.items())
    ]


async def _redis_memory(reader: Reader) -> dict[str, Any]:
    """INFO memory (on a Cluster, summed over the nodes that answered)."""
    info = await reader.client.info("memory")
    nodes = (
        list(info.values()) if info and all(isinstance(v, dict) for v in info.values()) else [info]
    )
    used = sum(int(n.get("used_memory", 0)) for n in nodes)
    peak = sum(int(n.get("used_memory_peak", 0)) for n in nodes)
    maxmemory = sum(int(n.get("maxmemory", 0)) for n in nodes)
    return {
        "used_bytes": used,
        "peak_bytes": peak,
        "maxmemory_bytes": maxmemory or None,
        "nodes": len(nodes),
    }


def mlflow_runs(settings: Settings) -> dict[str, Any]:
    """The latest nightly (step times), evaluation (metrics per model) and experiments
    (results per variant) runs; cached per tracking URI for ``MLFLOW_TTL`` seconds."""
    uri = settings.mlflow_tracking_uri
    cached = _mlflow_cache.get(uri)
    if cached is not None and time.monotonic() - cached[0] < MLFLOW_TTL:
        return cached[1]
    try:
        runs = _read_mlflow(settings)
    except Exception as exc:  # an unreachable tracking store must not break the page
        log.warning("dashboard: MLflow not readable at %s: %s", uri, exc)
        runs = {"nightly": None, "evaluation": None, "experiments": None, "mlflow_error": str(exc)}
    _mlflow_cache[uri] = (time.monotonic(), runs)
    return runs


def _read_mlflow(settings: Settings) -> dict[str, Any]:
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return {"nightly": None, "evaluation": None, "experiments": None}  # never tracked
    from mlflow.tracking import MlflowClient  # heavy: only when the dashboard is read

    from recolake.tracking import STEP_TAG

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        return {"nightly": None, "evaluation": None, "experiments": None}

    def latest(step: str):
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.{STEP_TAG} = '{step}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return found[0] if found else None

    nightly, evaluation, experiments = latest("nightly"), latest("evaluate"), latest("experiments")
    return {
        "nightly": _nightly(nightly),
        "evaluation": _evaluation(evaluation),
        "experiments": _experiments(client, experiments),
    }


def _run_head(run) -> dict[str, Any]:
    return {
        "run_id": run.info.run_id,
        "ds": run.data.tags.get("ds"),
        "started_at": run.info.start_time / 1000 if run.info.start_time else None,
    }


def _nightly(run) -> dict[str, Any] | None:
    if run is None:
        return None
    metrics = run.data.metrics
    steps = [
        {"step": name.removeprefix(STEP_SECONDS), "seconds": value}
        for name, value in metrics.items()
        if name.startswith(STEP_SECONDS) and name != TOTAL_SECONDS
    ]
    return {
        **_run_head(run),
        "steps": steps,  # MLflow keeps no order: the page shows them as logged by name
        "total_seconds": metrics.get(TOTAL_SECONDS, metrics.get("nightly_seconds")),
    }


def _evaluation(run) -> dict[str, Any] | None:
    """Metrics per model: evaluate logs ``<model>.<metric>`` (pipelines.evaluate.metric_key)."""
    if run is None:
        return None
    models: dict[str, dict[str, float]] = {}
    for name, value in run.data.metrics.items():
        model, dot, metric = name.partition(".")
        if dot:
            models.setdefault(model, {})[metric.replace("_at_", "@")] = value
    return {
        **_run_head(run),
        "candidate_version": run.data.tags.get("candidate_version"),
        "champion_version": run.data.tags.get("champion_version") or None,
        "evaluated_users": run.data.metrics.get("evaluated_users"),
        "models": models,
    }


def _experiments(client, run) -> dict[str, Any] | None:
    if run is None:
        return None
    try:
        path = client.download_artifacts(run.info.run_id, "experiment_results.json")
        rows = json.loads(Path(path).read_text())
    except Exception as exc:  # the run exists, its artifact does not (or is unreadable)
        log.warning("dashboard: experiment results of run %s: %s", run.info.run_id, exc)
        rows = []
    return {**_run_head(run), "results": rows}


def reports_root(settings: Settings) -> Path:
    return Path(settings.reports_dir).resolve()


def report_images(settings: Settings, ds: str | None) -> list[str]:
    """Paths (relative to reports_dir) of the plots of the ``ds`` reports, or of the newest
    dated report folder when ``ds`` is unknown."""
    root = reports_root(settings)
    if not root.is_dir():
        return []
    folder = root / ds if ds and (root / ds).is_dir() else None
    if folder is None:
        dated = sorted(p for p in root.iterdir() if p.is_dir())
        if not dated:
            return []
        folder = dated[-1]
    return sorted(
        str(p.relative_to(root)) for p in folder.rglob("*") if p.suffix.lower() in REPORT_IMAGES
    )


def report_file(settings: Settings, relative: str) -> Path | None:
    """A report image under reports_dir, or None (outside it, missing, or not an image)."""
    root = reports_root(settings)
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() not in REPORT_IMAGES:
        return None
    return path if path.is_file() else None


async def catalog(reader: Reader, item_ids: list[str]) -> dict[str, Any]:
    """Catalog entries of ``item_ids`` as served (the live overlay's over the publication's,
    through the Reader's per-version cache): item id -> {title, category, available, price},
    or null when neither knows it."""
    pub = await reader.publication()
    known, _ = await reader.details(pub, item_ids, ())
    out: dict[str, Any] = {}
    for item in item_ids:
        info = known.get(item)
        out[item] = (
            None
            if info is None
            else {
                "title": info.title,
                "category": info.category,
                "available": info.available,
                "price": info.price,
            }
        )
    return {"publication": pub.version, "items": out}
