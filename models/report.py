"""The evaluation report: one HTML page comparing every model on every metric.

Input is the evaluation document ``recolake evaluate`` writes
(recolake.evaluation_document.EvaluationDocument, or its JSON mapping, validated); output is
``index.html`` with its PNG plots beside it, so the directory can be copied, attached to an
MLflow run or served as is. The model ``served`` (the request-time blend replayed offline) is
highlighted, its validated weights shown, and the promotion section compares the candidate's
served blend with the champion's on the primary metric, as the gate does.
Metric names are read from the dict (``ndcg@10``, ``coverage@10``, ...): a new metric shows up
without touching this file. Every metric is treated as higher-is-better (novelty, coverage
and diversity included), which is how the evaluation defines them.

    python -m models.report EVALUATION.json --out DIR
"""

from __future__ import annotations

import argparse
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recolake.evaluation_document import SERVED, EvaluationDocument

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


def model_metrics(document: EvaluationDocument) -> dict[str, dict[str, float | None]]:
    """model name -> {metric: value, None when NaN}; at least one model."""
    if not document.models:
        raise ValueError("evaluation has no 'models': nothing to report")
    return {
        name: {m: _number(v, f"models[{name!r}][{m!r}]") for m, v in metrics.items()}
        for name, metrics in document.models.items()
    }


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


def primary_metric(document: EvaluationDocument, metrics: Sequence[str]) -> str | None:
    """The document's primary metric (the gate's) when a model has it, else nDCG, else the
    first metric."""
    if document.primary_metric in metrics:
        return document.primary_metric
    return _metric_with_prefix(metrics, "ndcg") or (metrics[0] if metrics else None)


def popularity_profile(document: EvaluationDocument) -> dict[str, list[float]]:
    """name -> share per popularity decile (1 = most popular items); empty if absent."""
    out: dict[str, list[float]] = {}
    for name, shares in document.popularity_profile.items():
        values = [_number(v, f"popularity_profile[{name!r}]") for v in shares]
        out[name] = [0.0 if v is None else v for v in values]
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
tr.served td:first-child { background: #fff1c2; font-weight: bold; }
tr.served { outline: 2px solid #e0a800; }
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


def _split_section(document: EvaluationDocument) -> str:
    split = document.split
    prose = (
        f"<p>{_e(split.kind)} split: trained on interactions up to {_e(split.cutoff)}, "
        f"evaluated on the following {_e(split.holdout_days)} days. Every model is scored on "
        "the same users and the same held-out items.</p>"
    )
    return "<h2>Split</h2>" + prose + _definition_list(split.model_dump())


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
        row_attr = ' class="served"' if name == SERVED else ""
        body.append(f"<tr{row_attr}><td>{_e(name)}</td>{''.join(cells)}</tr>")
    note = (
        f" The row <b>{SERVED}</b> is what the API serves (its blend replayed offline)."
        if SERVED in models
        else f" No <b>{SERVED}</b> row: the API's blend was not measured."
    )
    return (
        f'<table id="metrics"><thead><tr><th>model</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        f"<p>Best value per metric highlighted (higher is better for every metric).{note}</p>"
    )


def _served_section(document: EvaluationDocument) -> str:
    """The blend weights chosen on validation: what the publication carries to the API."""
    served = document.served
    parts = ["<h2>Served blend weights</h2>"]
    if served is None:
        parts.append("<p>No served weights in the evaluation.</p>")
        return "".join(parts)
    parts.append(
        f"<p>Chosen on the validation split ({_e(served.validation_users)} users, "
        f"{_e(served.grid_points)} grid points): {_e(document.primary_metric)} "
        f"{_fmt(_number(served.validation, 'served.validation'))}.</p>"
    )
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_fmt(w)}</td></tr>" for n, w in served.weights.items()
    )
    parts.append(
        '<table id="served-weights"><thead><tr><th>source</th><th>weight</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
    if served.top:
        names = list(served.weights) or sorted({n for p in served.top for n in p.weights})
        head = "".join(f"<th>{_e(n)}</th>" for n in names)
        body = "".join(
            "<tr><td>"
            + str(i)
            + "</td>"
            + "".join(f"<td>{_fmt(p.weights.get(n))}</td>" for n in names)
            + f"<td>{_fmt(_number(p.value, 'served.top'))}</td></tr>"
            for i, p in enumerate(served.top, start=1)
        )
        parts.append(
            f'<table id="served-grid"><thead><tr><th>#</th>{head}'
            f"<th>validation {_e(document.primary_metric)}</th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    return "".join(parts)


def _champion_section(
    document: EvaluationDocument, models: Mapping[str, Mapping[str, float | None]]
) -> str:
    """The champion's ALS configuration, re-trained on this split, against every model."""
    champion = document.champion
    parts = ["<h2>Champion</h2>"]
    if champion is None:
        parts.append("<p>No champion registered yet: the first model to pass the gate wins.</p>")
        return "".join(parts)
    version = champion.version
    scored = {m: _number(v, f"champion.metrics[{m!r}]") for m, v in champion.metrics.items()}
    parts.append(
        f"<p>Current champion: version {_e(version)} (trained for {_e(champion.ds)}); its ALS "
        "configuration re-trained on this split:</p>"
    )
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
    return "".join(parts)


def _promotion_section(document: EvaluationDocument) -> str:
    """What the gate judges: the candidate's served blend against the champion's served
    blend on the primary metric, same split; the decision once the gate has run."""
    metric = document.primary_metric
    parts = [
        "<h2>Promotion</h2>",
        f"<p>The gate compares the served blend ({SERVED}) of the candidate with the "
        f"champion's on {_e(metric)}, same split; a tie promotes.</p>",
    ]
    candidate = document.models.get(SERVED, {}).get(metric)
    champion = document.champion
    rows = [
        f"<tr><td>candidate v{_e(document.candidate.version)} ({SERVED})</td>"
        f"<td>{_fmt(None if candidate is None else _number(candidate, metric))}</td><td></td></tr>"
    ]
    if champion is not None:
        ref = (champion.served or {}).get(metric)
        diff = ""
        if ref is not None and candidate is not None:
            diff = f"{candidate - ref:+.4g}"
        rows.append(
            f"<tr><td>champion v{_e(champion.version)} ({SERVED})</td>"
            f"<td>{_fmt(None if ref is None else _number(ref, metric))}</td>"
            f"<td>{_e(diff)}</td></tr>"
        )
    parts.append(
        f'<table id="promotion"><thead><tr><th>publication</th><th>{_e(metric)}</th>'
        f"<th>candidate &minus; champion</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    if candidate is None:
        parts.append(f"<p>No {SERVED} {_e(metric)} for the candidate: the gate cannot decide.</p>")
    elif champion is None:
        parts.append("<p>No champion yet: the candidate becomes champion.</p>")
    elif (champion.served or {}).get(metric) is None:
        parts.append(
            f"<p>The champion's {SERVED} {_e(metric)} was not measured: the gate cannot decide.</p>"
        )
    if document.promotion is not None:
        parts.append(
            '<h3>Promotion decision</h3><div id="decision">'
            + _definition_list(document.promotion.model_dump())
            + "</div>"
        )
    else:
        parts.append("<p>The gate has not decided yet (see the run's promotion tags).</p>")
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


def write_report(evaluation: EvaluationDocument | Mapping[str, Any], out_dir: Path) -> Path:
    """Render ``index.html`` plus its PNG plots into ``out_dir``; returns the page's path.
    ``evaluation``: the document or its JSON mapping (validated: a ValueError when not one)."""
    document = EvaluationDocument.parse(evaluation)
    models = model_metrics(document)
    metrics = metric_names(models)
    primary = primary_metric(document, metrics)
    profile = popularity_profile(document)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    title = f"recolake evaluation @{document.k} for {document.ds}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{len(models)} models, {len(metrics)} metrics; primary metric "
        f"{_e(document.primary_metric)}.</p>",
        _split_section(document),
        "<h2>Metrics</h2>",
        _metrics_table(models, metrics, primary),
    ]
    colours = _colours([*models, *(n for n in profile if n not in models and n != HISTORY)])
    if metrics:
        plot_metrics(models, out_dir / METRICS_PNG, colours)
        sections.append(f'<img src="{METRICS_PNG}" alt="every model on every metric">')
    sections.append(_served_section(document))

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

    sections.append(_promotion_section(document))
    sections.append(_champion_section(document, models))
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
    index = write_report(EvaluationDocument.read(args.evaluation), args.out)
    print(index)
    return index


if __name__ == "__main__":
    main()
