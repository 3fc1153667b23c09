"""The HTML evaluation report: every model and metric shown, best values right, valid PNGs."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from models import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

EVALUATION = {
    "k": 10,
    "ds": "2011-12-09",
    "split": {
        "kind": "time",
        "cutoff": "2011-11-25T23:59:59",
        "holdout_days": 14,
        "train_users": 1234,
        "evaluated_users": 189,
    },
    "models": {
        "als": {
            "ndcg@10": 0.06,
            "precision@10": 0.04,
            "recall@10": 0.05,
            "map@10": 0.03,
            "hit_rate@10": 0.2,
            "coverage@10": 0.1,
            "diversity@10": 0.8,
            "novelty@10": 9.1,
        },
        "popularity": {
            "ndcg@10": 0.03,
            "precision@10": 0.04,  # ties with als: both highlighted
            "recall@10": 0.03,
            "map@10": 0.01,
            "hit_rate@10": 0.12,
            "coverage@10": 0.004,
            "diversity@10": 0.6,
            "novelty@10": 6.2,
        },
        "item_cf": {
            "ndcg@10": 0.05,
            "precision@10": 0.03,
            "recall@10": 0.07,
            "map@10": 0.02,
            "hit_rate@10": 0.25,
            "coverage@10": 0.3,
            "diversity@10": 0.85,
            "novelty@10": 10.3,
        },
        "<script>alert(1)</script>": {"ndcg@10": None, "precision@10": 0.01},
    },
    "popularity_profile": {
        "history": [0.5, 0.2, 0.1, 0.06, 0.05, 0.04, 0.02, 0.01, 0.01, 0.01],
        "als": [0.6, 0.2, 0.1, 0.05, 0.02, 0.01, 0.01, 0.005, 0.005, 0.0],
        "popularity": [1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    },
    "champion": {"version": "3", "ndcg@10": 0.05},
    "promotion": {"primary_metric": "ndcg@10", "promoted": True},
}


class Tables(HTMLParser):
    """Rows of each <table id=...> as lists of (text, css class) cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self.images: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._cls = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell, self._cls = [], a.get("class") or ""
        elif tag == "img":
            self.images.append(a["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(("".join(self._cell), self._cls))
            self._cell = None
        elif tag == "table":
            self._table = None


def parse(index: Path) -> Tables:
    parser = Tables()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def test_page_shows_every_model_and_metric_with_valid_pngs(tmp_path):
    index = report.write_report(copy.deepcopy(EVALUATION), tmp_path / "out")
    assert index == tmp_path / "out" / "index.html"
    page = parse(index)
    header, *body = page.tables["metrics"]
    metrics = [text for text, _ in header[1:]]
    assert metrics == [  # the preferred order, read from the dict
        "ndcg@10",
        "precision@10",
        "recall@10",
        "map@10",
        "hit_rate@10",
        "coverage@10",
        "diversity@10",
        "novelty@10",
    ]
    assert [row[0][0] for row in body] == list(EVALUATION["models"])
    assert sorted(page.images) == ["coverage.png", "metrics.png", "popularity_bias.png"]
    for name in page.images:
        data = (index.parent / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000
    text = index.read_text(encoding="utf-8")
    assert "2011-11-25T23:59:59" in text and "189" in text  # the split is described


def test_highlighted_best_matches_the_maximum(tmp_path):
    page = parse(report.write_report(copy.deepcopy(EVALUATION), tmp_path))
    header, *body = page.tables["metrics"]
    for col, (metric, _) in enumerate(header[1:], start=1):
        values = {
            name: m[metric] for name, m in EVALUATION["models"].items() if m.get(metric) is not None
        }
        top = max(values.values())
        expected = {name for name, v in values.items() if v == top}
        highlighted = {row[0][0] for row in body if row[col][1] == "best"}
        assert highlighted == expected, metric
    assert {row[0][0] for row in body if row[2][1] == "best"} == {"als", "popularity"}


def test_model_names_are_escaped(tmp_path):
    text = report.write_report(copy.deepcopy(EVALUATION), tmp_path).read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_champion_comparison_shows_the_difference(tmp_path):
    page = parse(report.write_report(copy.deepcopy(EVALUATION), tmp_path))
    rows = {row[0][0]: row[1] for row in page.tables["champion"][1:]}
    assert rows["champion v3"][0] == "0.05"
    assert rows["als"] == ("0.06 (+0.01)", "better")
    assert rows["popularity"] == ("0.03 (-0.02)", "worse")


def test_missing_profile_and_null_champion(tmp_path):
    evaluation = copy.deepcopy(EVALUATION)
    del evaluation["popularity_profile"]
    del evaluation["promotion"]
    evaluation["champion"] = None
    index = report.write_report(evaluation, tmp_path)
    page = parse(index)
    text = index.read_text(encoding="utf-8")
    assert "No popularity profile" in text and "No champion registered yet" in text
    assert "champion" not in page.tables and "bias" not in page.tables
    assert sorted(page.images) == ["coverage.png", "metrics.png"]
    assert not (tmp_path / report.BIAS_PNG).exists()


def test_metric_keys_come_from_the_dict(tmp_path):
    evaluation = {
        "k": 5,
        "models": {
            "a": {"mrr@5": 0.3, "ndcg@5": 0.2},
            "b": {"mrr@5": 0.1, "ndcg@5": 0.4, "serendipity@5": 0.9},
        },
    }
    index = report.write_report(evaluation, tmp_path)
    header, *body = parse(index).tables["metrics"]
    assert [t for t, _ in header[1:]] == ["ndcg@5", "mrr@5", "serendipity@5"]
    assert [(row[0][0], row[3][0]) for row in body] == [("a", "–"), ("b", "0.9")]
    assert not (tmp_path / report.COVERAGE_PNG).exists()  # no coverage metric: no plot
    assert (tmp_path / report.METRICS_PNG).read_bytes()[:8] == PNG_MAGIC


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no 'models'"):
        report.write_report({"k": 10, "models": {}}, tmp_path)
    with pytest.raises(ValueError, match="expected a number"):
        report.write_report({"models": {"a": {"ndcg@10": "high"}}}, tmp_path)


def test_main_renders_a_json_file(tmp_path, capsys):
    source = tmp_path / "evaluation.json"
    source.write_text(json.dumps(EVALUATION), encoding="utf-8")
    index = report.main([str(source), "--out", str(tmp_path / "html")])
    assert index.read_text(encoding="utf-8").count("<tr>") > len(EVALUATION["models"])
    assert capsys.readouterr().out.strip() == str(index)
