"""Content neighbours: exact cosine on a hand-checked case, and no blow-up on a shared term."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features import columns as c
from models.content import collect_index, content_neighbours, fit_tfidf, item_text, tfidf_rows

pytestmark = pytest.mark.spark


def test_scores_are_the_exact_cosines_of_the_tfidf_vectors(spark):
    catalog = spark.createDataFrame(
        [
            ("a", "red apple juice", "drinks"),
            ("b", "green apple juice juice", "drinks"),
            ("c", "apple pie", "bakery"),
            ("d", "cherry pie", "bakery"),
            ("e", "dog food", "pets"),
        ],
        "item_id string, title string, category string",
    )
    got = {
        (r[c.ITEM_ID], r[c.NEIGHBOUR_ID]): r[c.SCORE]
        for r in content_neighbours(
            catalog, top_n=10, min_score=0.0, max_term_share=1.0, prune_score=0.0
        ).collect()
    }
    # The same cosines from the words by hand: tf x idf (Spark's log((n+1)/(df+1))), L2 unit.
    docs = {
        "a": ["red", "apple", "juice", "cat_drinks"],
        "b": ["green", "apple", "juice", "juice", "cat_drinks"],
        "c": ["apple", "pie", "cat_bakery"],
        "d": ["cherry", "pie", "cat_bakery"],
        "e": ["dog", "food", "cat_pets"],
    }
    vocab = sorted({w for ws in docs.values() for w in ws})
    df = {w: sum(w in ws for ws in docs.values()) for w in vocab}
    matrix = np.array(
        [[ws.count(w) * math.log(6 / (df[w] + 1)) for w in vocab] for ws in docs.values()]
    )
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    cosine = matrix @ matrix.T
    ids = list(docs)
    want = {
        (ids[i], ids[j]): cosine[i, j]
        for i in range(5)
        for j in range(5)
        if i != j and cosine[i, j] > 0
    }
    assert set(got) == set(want)
    for pair, score in want.items():
        assert got[pair] == pytest.approx(score, abs=1e-9)
    ranks = {
        (r[c.ITEM_ID], r[c.RANK]): r[c.NEIGHBOUR_ID]
        for r in content_neighbours(
            catalog, top_n=1, min_score=0.0, max_term_share=1.0, prune_score=0.0
        ).collect()
    }
    assert ranks[("a", 1)] == "b" and ranks[("d", 1)] == "c"


def test_terms_in_every_item_do_not_blow_up(spark):
    """2,000 items all with "pack", half with "organic": neither term may pair every item with
    every other (the old self-join did n^2 / 2 + n^2 / 8 pairs); each item still gets top_n."""
    n, top_n = 2000, 5
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(300)]
    rows = [
        (
            f"i{k:04d}",
            " ".join(
                ["pack", *(["organic"] if k % 2 else []), *rng.choice(words, 3, replace=False)]
            ),
            f"c{k % 20}",
        )
        for k in range(n)
    ]
    catalog = spark.createDataFrame(rows, "item_id string, title string, category string")
    out = content_neighbours(catalog, top_n=top_n, max_term_share=1.0)  # no document-frequency cap
    counts = {r[c.ITEM_ID]: r["count"] for r in out.groupBy(c.ITEM_ID).count().collect()}
    assert len(counts) == n and set(counts.values()) == {top_n}

    texts = item_text(catalog)
    index = collect_index(tfidf_rows(texts, fit_tfidf(texts)), threshold=0.3, max_df_share=1.0)
    matches = int(index.row_cost().sum())
    assert matches < n * n / 20, matches  # "organic" alone would give n^2 / 4
