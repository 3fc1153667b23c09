"""The evaluation report: one HTML page comparing every model on every metric.

Input is the dict ``recolake evaluate`` writes (``{"k", "ds", "split", "models",
"popularity_profile", "champion", "promotion"}``); output is ``index.html`` with its PNG plots
beside it, so the directory can be copied, attached to an MLflow run or served as is.
Metric names are read from the dict (``ndcg@10``, ``coverage@10``, ...): a new metric shows up
without touching this file. Every metric is treated as higher-is-better (novelty, coverage
and diversity included), which is how the evaluation defines them.

    python -m models.report EVALUATION.json --out DIR
"""

from __future__ import annotations

import argparse
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Preferred column order (by the name before ``@``); unknown metrics follow alphabetically.
METRIC_ORDER = (
    "ndcg",
    "precision",
    "recall",
    "map",
    "hit_rate",
    "coverage",
    "diversity",
    "novelty",
)
HISTORY = "history"
INDEX = "index.html"
METRICS_PNG = "metrics.png"
BIAS_PNG = "popularity_bias.png"
COVERAGE_PNG = "coverage.png"


# --------------------------------------------------------------------------- the numbers


def _number(value: Any, where: str) -> float | None:
    """A metric value as a float; None/NaN mean "not computed" and are shown as a dash."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    return None if math.isnan(value) else float(value)


def model_metrics(evaluation: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """``models`` checked: a non-empty mapping of model name -> {metric: number}."""
    models = evaluation.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ValueError("evaluation has no 'models' mapping: nothing to report")
    out: dict[str, dict[str, float | None]] = {}
    for name, metrics in models.items():
        if not isinstance(metrics, Mapping):
            raise ValueError(f"models[{name!r}]: expected a metric mapping, got {metrics!r}")
        out[str(name)] = {
            str(m): _number(v, f"models[{name!r}][{m!r}]") for m, v in metrics.items()
        }
    return out


def metric_names(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every metric any model has, in the preferred order."""

    def key(metric: str) -> tuple[int, str]:
        base = metric.split("@", 1)[0]
        pos = METRIC_ORDER.index(base) if base in METRIC_ORDER else len(METRIC_ORDER)
        return pos, metric

    return sorted({m for metrics in models.values() for m in metrics}, key=key)


def best_per_metric(models: Mapping[str, Mapping[str, float | None]]) -> dict[str, set[str]]:
    """metric -> the model(s) with the highest value (ties all win; missing values never)."""
    best: dict[str, set[str]] = {}
    for metric in metric_names(models):
        values = {n: m.get(metric) for n, m in models.items() if m.get(metric) is not None}
        if values:
            top = max(values.values())
            best[metric] = {n for n, v in values.items() if v == top}
    return best


def _metric_with_prefix(metrics: Sequence[str], prefix: str) -> str | None:
    return next((m for m in metrics if m.split("@", 1)[0] == prefix), None)


def primary_metric(evaluation: Mapping[str, Any], metrics: Sequence[str]) -> str | None:
    """The promotion gate's metric if given, else nDCG, else the first metric."""
    promotion = evaluation.get("promotion") or {}
    chosen = promotion.get("primary_metric") if isinstance(promotion, Mapping) else None
    if chosen in metrics:
        return chosen
    return _metric_with_prefix(metrics, "ndcg") or (metrics[0] if metrics else None)


def popularity_profile(evaluation: Mapping[str, Any]) -> dict[str, list[float]]:
    """name -> share per popularity decile (1 = most popular items); empty if absent."""
    profile = evaluation.get("popularity_profile") or {}
    if not isinstance(profile, Mapping):
        raise ValueError(f"popularity_profile: expected a mapping, got {profile!r}")
    out: dict[str, list[float]] = {}
    for name, shares in profile.items():
        if not isinstance(shares, Sequence) or isinstance(shares, str):
            raise ValueError(f"popularity_profile[{name!r}]: expected a list, got {shares!r}")
        values = [_number(v, f"popularity_profile[{name!r}]") for v in shares]
        out[str(name)] = [0.0 if v is None else v for v in values]
    return out


# --------------------------------------------------------------------------- the plots


def _new_figure(width: float, height: float):
    """A figure on the Agg canvas directly: no pyplot, no global backend state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colours(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def plot_metrics(
    models: Mapping[str, Mapping[str, float | None]],
    path: Path,
    colours: Mapping[str, Any] | None = None,
) -> Path:
    """Small multiples, one panel per metric: their scales differ (nDCG 0.05, novelty 9)."""
    metrics = metric_names(models)
    names = list(models)
    colours = colours or _colours(names)
    cols = min(4, max(1, len(metrics)))
    rows = max(1, math.ceil(len(metrics) / cols))
    fig = _new_figure(3.2 * cols, 0.6 + 0.32 * len(names) * rows + 0.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(metrics):
            ax.set_visible(False)
            continue
        metric = metrics[i]
        values = [models[n].get(metric) for n in names]
        shown = [0.0 if v is None else v for v in values]
        ypos = list(range(len(names)))
        ax.barh(ypos, shown, color=[colours[n] for n in names])
        ax.set_yticks(ypos, names if i % cols == 0 else [""] * len(names))
        ax.invert_yaxis()
        ax.set_title(metric)
        for y, v in zip(ypos, values, strict=True):
            ax.annotate(
                "n/a" if v is None else f"{v:.3g}",
                (0 if v is None else v, y),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        ax.margins(x=0.25)
    fig.suptitle("Every model on every metric (higher is better)")
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_popularity_bias(
    profile: Mapping[str, Sequence[float]], path: Path, colours: Mapping[str, Any] | None = None
) -> Path:
    """Share of items per popularity decile: how far each model leans on the head."""
    names = [n for n in profile if n != HISTORY]
    colours = colours or _colours(names)
    fig = _new_figure(8, 4.5)
    ax = fig.add_subplot()
    if HISTORY in profile:
        shares = profile[HISTORY]
        ax.plot(
            range(1, len(shares) + 1),
            shares,
            color="black",
            linestyle="--",
            linewidth=2.5,
            label="history (training interactions)",
        )
    for name in names:
        shares = profile[name]
        ax.plot(range(1, len(shares) + 1), shares, marker="o", color=colours[name], label=name)
    deciles = max((len(s) for s in profile.values()), default=10)
    ax.set_xticks(range(1, deciles + 1))
    ax.set_xlabel("item popularity decile (1 = most popular 10% of items)")
    ax.set_ylabel("share of interactions / recommendations")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Popularity bias: recommendations vs history")
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_coverage(
    models: Mapping[str, Mapping[str, float | None]],
    coverage: str,
    accuracy: str,
    path: Path,
    colours: Mapping[str, Any] | None = None,
) -> Path:
    """Accuracy against catalog coverage: the trade-off popularity baselines sit at one end of."""
    colours = colours or _colours(list(models))
    fig = _new_figure(7, 4.5)
    ax = fig.add_subplot()
    xs, ys = [0.0], [0.0]
    for name, metrics in models.items():
        x, y = metrics.get(coverage), metrics.get(accuracy)
        if x is None or y is None:
            continue
        xs.append(x)
        ys.append(y)
        ax.scatter([x], [y], s=60, color=colours[name])
        ax.annotate(name, (x, y), xytext=(5, 3), textcoords="offset points", fontsize=9)
    ax.set_xlabel(coverage)
    ax.set_ylabel(accuracy)
    # Room on the right and top for the labels; 0 stays in view to show the true scale.
    ax.set_xlim(min(xs), (max(xs) or 1.0) * 1.3)
    ax.set_ylim(min(ys), (max(ys) or 1.0) * 1.15)
    ax.grid(alpha=0.3)
    ax.set_title(f"{accuracy} vs {coverage}")
    fig.savefig(path, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------- the page

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
td.best { background: #d7f5d7; font-weight: bold; }
th.primary { background: #e3ecfa; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.better { color: #1a7f1a; } .worse { color: #b3261e; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dt { font-weight: bold; } dd { margin: 0; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.4g}"


def _definition_list(items: Mapping[str, Any]) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items.items())
    return f"<dl>{rows}</dl>"


def _split_section(evaluation: Mapping[str, Any]) -> str:
    split = evaluation.get("split") or {}
    if not isinstance(split, Mapping) or not split:
        return "<h2>Split</h2><p>No split description in the evaluation.</p>"
    kind = split.get("kind", "?")
    prose = f"<p>{_e(kind)} split"
    if "cutoff" in split:
        prose += f": trained on interactions up to {_e(split['cutoff'])}"
    if "holdout_days" in split:
        prose += f", evaluated on the following {_e(split['holdout_days'])} days"
    prose += ". Every model is scored on the same users and the same held-out items.</p>"
    return "<h2>Split</h2>" + prose + _definition_list(split)


def _metrics_table(
    models: Mapping[str, Mapping[str, float | None]], metrics: Sequence[str], primary: str | None
) -> str:
    best = best_per_metric(models)
    primary_attr = ' class="primary"'
    head = "".join(f"<th{primary_attr if m == primary else ''}>{_e(m)}</th>" for m in metrics)
    body = []
    for name, values in models.items():
        cells = []
        for m in metrics:
            mark = ' class="best"' if name in best.get(m, ()) else ""
            cells.append(f"<td{mark}>{_fmt(values.get(m))}</td>")
        body.append(f"<tr><td>{_e(name)}</td>{''.join(cells)}</tr>")
    return (
        f'<table id="metrics"><thead><tr><th>model</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        "<p>Best value per metric highlighted (higher is better for every metric).</p>"
    )


def _champion_section(
    evaluation: Mapping[str, Any],
    models: Mapping[str, Mapping[str, float | None]],
    primary: str | None,
) -> str:
    champion = evaluation.get("champion")
    promotion = evaluation.get("promotion")
    parts = ["<h2>Champion</h2>"]
    if not isinstance(champion, Mapping) or not champion:
        parts.append("<p>No champion registered yet: the first model to pass the gate wins.</p>")
    else:
        version = champion.get("version", "?")
        # Only its numeric entries are metrics; anything else (run id, params) is context.
        scored = {
            str(k): float(v)
            for k, v in champion.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "version"
        }
        parts.append(f"<p>Current champion: version {_e(version)}.</p>")
        if scored:
            head = "".join(f"<th>{_e(m)}</th>" for m in scored)
            rows = [
                f"<tr><td>champion v{_e(version)}</td>"
                + "".join(f"<td>{_fmt(v)}</td>" for v in scored.values())
                + "</tr>"
            ]
            for name, values in models.items():
                cells = []
                for m, ref in scored.items():
                    v = values.get(m)
                    if v is None or ref is None:
                        cells.append(f"<td>{_fmt(v)}</td>")
                        continue
                    cls = "better" if v > ref else "worse" if v < ref else ""
                    cells.append(f'<td class="{cls}">{_fmt(v)} ({v - ref:+.3g})</td>')
                rows.append(f"<tr><td>{_e(name)}</td>{''.join(cells)}</tr>")
            parts.append(
                f'<table id="champion"><thead><tr><th>model</th>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>"
            )
    if isinstance(promotion, Mapping) and promotion:
        parts.append("<h3>Promotion decision</h3>" + _definition_list(promotion))
    elif primary:
        parts.append(f"<p>Primary metric: {_e(primary)}.</p>")
    return "".join(parts)


def _bias_table(profile: Mapping[str, Sequence[float]]) -> str:
    """Share in the most popular decile per model: the one number behind the plot."""
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_fmt(s[0] if s else None)}</td>"
        f"<td>{_fmt(sum(s[: max(1, len(s) // 2)]) if s else None)}</td></tr>"
        for n, s in profile.items()
    )
    return (
        '<table id="bias"><thead><tr><th>model</th><th>share in top decile</th>'
        f"<th>share in top half</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def write_report(evaluation: dict, out_dir: Path) -> Path:
    """Render ``index.html`` plus its PNG plots into ``out_dir``; returns the page's path."""
    models = model_metrics(evaluation)
    metrics = metric_names(models)
    primary = primary_metric(evaluation, metrics)
    profile = popularity_profile(evaluation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    k = evaluation.get("k")
    title = f"recolake evaluation{f' @{k}' if k is not None else ''}"
    if evaluation.get("ds"):
        title += f" for {evaluation['ds']}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{len(models)} models, {len(metrics)} metrics.</p>",
        _split_section(evaluation),
        "<h2>Metrics</h2>",
        _metrics_table(models, metrics, primary),
    ]
    colours = _colours([*models, *(n for n in profile if n not in models and n != HISTORY)])
    if metrics:
        plot_metrics(models, out_dir / METRICS_PNG, colours)
        sections.append(f'<img src="{METRICS_PNG}" alt="every model on every metric">')

    sections.append("<h2>Coverage</h2>")
    coverage = _metric_with_prefix(metrics, "coverage")
    if coverage and primary and coverage != primary:
        plot_coverage(models, coverage, primary, out_dir / COVERAGE_PNG, colours)
        sections.append(f'<img src="{COVERAGE_PNG}" alt="{_e(primary)} vs {_e(coverage)}">')
    else:
        sections.append("<p>No coverage metric in the evaluation.</p>")

    sections.append("<h2>Popularity bias</h2>")
    if profile:
        plot_popularity_bias(profile, out_dir / BIAS_PNG, colours)
        sections.append(f'<img src="{BIAS_PNG}" alt="popularity profile per model">')
        sections.append(_bias_table(profile))
    else:
        sections.append("<p>No popularity profile in the evaluation.</p>")

    sections.append(_champion_section(evaluation, models, primary))
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
    index = out_dir / INDEX
    index.write_text(page, encoding="utf-8")
    return index


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m models.report", description="Render the evaluation JSON as HTML."
    )
    parser.add_argument("evaluation", type=Path, help="JSON written by `recolake evaluate`")
    parser.add_argument("--out", type=Path, required=True, help="directory for index.html")
    args = parser.parse_args(argv)
    evaluation = json.loads(args.evaluation.read_text(encoding="utf-8"))
    index = write_report(evaluation, args.out)
    print(index)
    return index


if __name__ == "__main__":
    main()
