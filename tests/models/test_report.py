"""The HTML evaluation report: every model and metric shown, best values right, valid PNGs."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from models import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SPLIT = {
    "kind": "time",
    "cutoff": "2011-11-25T23:59:59",
    "end": "2011-12-09T23:59:59",
    "holdout_days": 14,
    "validation_start": "2011-11-11T23:59:59",
    "validation_days": 14,
    "train_users": 1234,
    "evaluated_users": 189,
}
CANDIDATE = {"version": "4", "ds": "2011-12-09", "params": {"rank": 16, "seed": 42}}
EVALUATION = {
    "k": 10,
    "ds": "2011-12-09",
    "primary_metric": "ndcg@10",
    "split": SPLIT,
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
        "served": {
            "ndcg@10": 0.07,
            "precision@10": 0.035,
            "recall@10": 0.06,
            "map@10": 0.035,
            "hit_rate@10": 0.22,
            "coverage@10": 0.2,
            "diversity@10": 0.7,
            "novelty@10": 8.0,
        },
        "<script>alert(1)</script>": {"ndcg@10": float("nan"), "precision@10": 0.01},
    },
    "served": {
        "weights": {"als": 1.0, "neighbours": 0.5, "popular": 0.25},
        "validation": 0.065,
        "validation_users": 170,
        "grid_points": 27,
        "top": [
            {"weights": {"als": 1.0, "neighbours": 0.5, "popular": 0.25}, "value": 0.065},
            {"weights": {"als": 1.0, "neighbours": 0.0, "popular": 0.5}, "value": 0.061},
        ],
    },
    "candidate": CANDIDATE,
    "popularity_profile": {
        "history": [0.5, 0.2, 0.1, 0.06, 0.05, 0.04, 0.02, 0.01, 0.01, 0.01],
        "als": [0.6, 0.2, 0.1, 0.05, 0.02, 0.01, 0.01, 0.005, 0.005, 0.0],
        "popularity": [1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    },
    "champion": {
        "version": "3",
        "ds": "2011-12-08",
        "params": {"rank": 8, "seed": 42},
        "metrics": {"ndcg@10": 0.05},
        "served": {"ndcg@10": 0.066},
    },
    "promotion": {
        "metric": "ndcg@10",
        "candidate_version": "4",
        "candidate": 0.07,
        "champion_version": "3",
        "champion": 0.066,
        "promoted": True,
        "reason": "served ndcg@10 0.0700 >= champion's served 0.0660 on the same split",
    },
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
    text = index.read_text(encoding="utf-8")
    assert text.count('<tr class="served">') == 1  # the served row, highlighted
    assert '<tr class="served"><td>served</td>' in text
    assert sorted(page.images) == ["coverage.png", "metrics.png", "popularity_bias.png"]
    for name in page.images:
        data = (index.parent / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000
    assert "2011-11-25T23:59:59" in text and "189" in text  # the split is described


def test_highlighted_best_matches_the_maximum(tmp_path):
    page = parse(report.write_report(copy.deepcopy(EVALUATION), tmp_path))
    header, *body = page.tables["metrics"]
    for col, (metric, _) in enumerate(header[1:], start=1):
        values = {
            name: m[metric]
            for name, m in EVALUATION["models"].items()
            if m.get(metric) is not None and m[metric] == m[metric]  # NaN: not computed
        }
        top = max(values.values())
        expected = {name for name, v in values.items() if v == top}
        highlighted = {row[0][0] for row in body if row[col][1] == "best"}
        assert highlighted == expected, metric
    assert {row[0][0] for row in body if row[2][1] == "best"} == {"als", "popularity"}
    assert {row[0][0] for row in body if row[1][1] == "best"} == {"served"}


def test_served_weights_and_their_grid_are_shown(tmp_path):
    page = parse(report.write_report(copy.deepcopy(EVALUATION), tmp_path))
    weights = {row[0][0]: row[1][0] for row in page.tables["served-weights"][1:]}
    assert weights == {"als": "1", "neighbours": "0.5", "popular": "0.25"}
    header, *grid = page.tables["served-grid"]
    assert [t for t, _ in header] == ["#", "als", "neighbours", "popular", "validation ndcg@10"]
    assert [[t for t, _ in row] for row in grid] == [
        ["1", "1", "0.5", "0.25", "0.065"],
        ["2", "1", "0", "0.5", "0.061"],
    ]
    text = (tmp_path / report.INDEX).read_text(encoding="utf-8")
    assert "170 users, 27 grid points" in text


def test_promotion_compares_served_blends_and_shows_the_decision(tmp_path):
    index = report.write_report(copy.deepcopy(EVALUATION), tmp_path)
    page = parse(index)
    header, *rows = page.tables["promotion"]
    assert header[1][0] == "ndcg@10"
    assert [[t for t, _ in row] for row in rows] == [
        ["candidate v4 (served)", "0.07", ""],
        ["champion v3 (served)", "0.066", "+0.004"],
    ]
    text = index.read_text(encoding="utf-8")
    assert "Promotion decision" in text
    assert "served ndcg@10 0.0700 &gt;= champion&#x27;s served 0.0660" in text

    # The primary metric is the document's, not a guess: recall@10 is compared when chosen.
    recall = copy.deepcopy(EVALUATION)
    recall["primary_metric"] = "recall@10"
    recall["champion"]["served"] = {"recall@10": 0.05}
    del recall["promotion"]
    page = parse(report.write_report(recall, tmp_path / "recall"))
    header, *rows = page.tables["promotion"]
    assert header[1][0] == "recall@10"
    assert [t for t, _ in rows[1]] == ["champion v3 (served)", "0.05", "+0.01"]
    assert page.tables["metrics"][0][3] == ("recall@10", "primary")
    text = (tmp_path / "recall" / report.INDEX).read_text(encoding="utf-8")
    assert "The gate has not decided yet" in text


def test_promotion_says_what_the_gate_lacks(tmp_path):
    no_served = copy.deepcopy(EVALUATION)
    del no_served["models"]["served"], no_served["promotion"]
    no_served["champion"]["served"] = None
    text = report.write_report(no_served, tmp_path / "a").read_text(encoding="utf-8")
    assert "No served ndcg@10 for the candidate: the gate cannot decide" in text
    assert "No <b>served</b> row" in text and '<tr class="served">' not in text
    champion_unmeasured = copy.deepcopy(EVALUATION)
    champion_unmeasured["champion"]["served"] = None
    del champion_unmeasured["promotion"]
    text = report.write_report(champion_unmeasured, tmp_path / "b").read_text(encoding="utf-8")
    assert "The champion's served ndcg@10 was not measured" in text
    first = copy.deepcopy(EVALUATION)
    first["champion"] = None
    del first["promotion"]
    text = report.write_report(first, tmp_path / "c").read_text(encoding="utf-8")
    assert "No champion yet: the candidate becomes champion" in text


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
    evaluation["served"] = None
    index = report.write_report(evaluation, tmp_path)
    page = parse(index)
    text = index.read_text(encoding="utf-8")
    assert "No popularity profile" in text and "No champion registered yet" in text
    assert "No served weights" in text and "served-weights" not in page.tables
    assert "champion" not in page.tables and "bias" not in page.tables
    assert sorted(page.images) == ["coverage.png", "metrics.png"]
    assert not (tmp_path / report.BIAS_PNG).exists()


def test_metric_keys_come_from_the_dict(tmp_path):
    evaluation = {
        "k": 5,
        "ds": "2011-12-09",
        "primary_metric": "ndcg@5",
        "split": SPLIT,
        "candidate": CANDIDATE,
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
    empty = {**copy.deepcopy(EVALUATION), "models": {}, "promotion": None}
    with pytest.raises(ValueError, match="no 'models'"):
        report.write_report(empty, tmp_path)
    with pytest.raises(ValueError, match="valid number"):
        report.write_report({**EVALUATION, "models": {"a": {"ndcg@10": "high"}}}, tmp_path)
    with pytest.raises(ValueError, match="Extra inputs"):  # drift: a key nobody reads
        report.write_report({**EVALUATION, "promotion_metric": "ndcg@10"}, tmp_path)


def test_main_renders_a_json_file(tmp_path, capsys):
    source = tmp_path / "evaluation.json"
    source.write_text(json.dumps(EVALUATION), encoding="utf-8")  # NaN as json writes it
    index = report.main([str(source), "--out", str(tmp_path / "html")])
    assert index.read_text(encoding="utf-8").count("<tr>") > len(EVALUATION["models"])
    assert capsys.readouterr().out.strip() == str(index)
