"""The experiments section of the report: one HTML table per experiment and one plot of the
three rates with their 95% intervals, written to ``<reports_dir>/<ds>/experiments/``.

Self-contained (the evaluation report, models/report.py, may link to it): static HTML, the
PNG beside it, drawn on the Agg canvas directly (no pyplot, no display).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from features import columns as c
from models.experiments import VariantResult

#: Row label per rate in the table and the plot.
RATE_LABELS = {
    "ctr": "CTR",
    "conversion": "conversion",
    "revenue_per_impression": "revenue / impression",
}
ALPHA = 0.05

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.better { background: #d8f5d0; } td.worse { background: #f8d7d3; }
tr.control td:first-child { font-weight: bold; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 4) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}g}"


def _experiments(results: Sequence[VariantResult]) -> dict[str, list[VariantResult]]:
    grouped: dict[str, list[VariantResult]] = {}
    for r in results:
        grouped.setdefault(r.counts.experiment, []).append(r)
    return grouped


def plot_experiment(experiment: str, results: Sequence[VariantResult], path: Path) -> Path:
    """One panel per rate: each variant's estimate with its 95% interval as an error bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 0.8 + 0.45 * len(results) + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(c.EXPERIMENT_RATES), squeeze=False)[0]
    names = [r.counts.variant for r in results]
    for ax, rate in zip(axes, c.EXPERIMENT_RATES, strict=True):
        ypos = list(range(len(results)))
        for y, r in zip(ypos, results, strict=True):
            est = r.rates[rate]
            if est.value is None:
                continue
            lo, hi = est.value - est.low, est.high - est.value
            colour = "#555555" if r.is_control else "#1f77b4"
            ax.errorbar(est.value, y, xerr=[[lo], [hi]], fmt="o", color=colour, capsize=4)
        ax.set_yticks(ypos, names if rate == c.EXPERIMENT_RATES[0] else [""] * len(names))
        ax.invert_yaxis()
        ax.set_title(RATE_LABELS[rate])
        ax.margins(y=0.4)
    fig.suptitle(f"{experiment}: rates per variant with 95% intervals")
    fig.savefig(path, format="png", dpi=100)
    return path


def _table(results: Sequence[VariantResult]) -> str:
    head = (
        "<tr><th>variant</th><th>impressions</th><th>items shown</th><th>clicks</th>"
        "<th>carts</th><th>purchases</th><th>revenue</th>"
        + "".join(
            f"<th>{_e(RATE_LABELS[rate])} [95% CI]</th><th>&Delta; vs control (p)</th>"
            for rate in c.EXPERIMENT_RATES
        )
        + "</tr>"
    )
    rows = []
    for r in results:
        n = r.counts
        cells = [
            f"<td>{_e(n.variant)}{' (control)' if r.is_control else ''}</td>",
            *(
                f"<td>{v}</td>"
                for v in (n.impressions, n.items_shown, n.clicks, n.carts, n.purchases)
            ),
            f"<td>{n.revenue:.2f}</td>",
        ]
        for rate in c.EXPERIMENT_RATES:
            est = r.rates[rate]
            cells.append(f"<td>{_num(est.value)} [{_num(est.low)}, {_num(est.high)}]</td>")
            cmp = r.vs_control.get(rate)
            if cmp is None or cmp.diff is None:
                cells.append("<td></td>")
                continue
            significant = cmp.p_value is not None and cmp.p_value < ALPHA
            cls = ""
            if significant:
                cls = ' class="better"' if cmp.diff > 0 else ' class="worse"'
            cells.append(f"<td{cls}>{cmp.diff:+.4g} (p={_num(cmp.p_value, 3)})</td>")
        row_attr = ' class="control"' if r.is_control else ""
        rows.append(f"<tr{row_attr}>{''.join(cells)}</tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def write_experiments_report(
    results: Sequence[VariantResult], ds: date, window_hours: float, out_dir: Path
) -> Path:
    """index.html (+ one PNG per experiment) in ``out_dir``; returns the HTML's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>Online experiments, impressions shown on {_e(ds.isoformat())}</h1>",
        "<p>Each view, cart and purchase of a recommended item is credited to one impression "
        "of the shopper: the one the event names by its recommendation id, else the last one "
        f"that showed the item, at most {_e(f'{window_hours:g}')} hours before. CTR and "
        "conversion are shares of impressions with a credited view and purchase (Wilson "
        "intervals, two-proportion z-test); revenue per impression uses Welch's t-test. "
        f"Differences with p &lt; {ALPHA} are coloured.</p>",
    ]
    grouped = _experiments(results)
    if not grouped:
        parts.append("<p>No impressions were logged on this date.</p>")
    for i, (experiment, rows) in enumerate(grouped.items()):
        png = plot_experiment(experiment, rows, out_dir / f"experiment-{i}.png")
        parts.append(f"<h2>{_e(experiment)}</h2>")
        parts.append(_table(rows))
        parts.append(f'<img src="{_e(png.name)}" alt="{_e(experiment)} rates">')
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>recolake experiments {_e(ds.isoformat())}</title><style>{_STYLE}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )
    path = out_dir / "index.html"
    path.write_text(page)
    return path
