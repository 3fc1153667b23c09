"""Content model: TF-IDF over item title + category (+ brand), item-item cosine neighbours.

Built from Spark ML feature transformers; similarities come from an inverted index (items
sharing a term meet in a join), so the work grows with shared terms, not with items².
Items with no interactions get neighbours too: that is how new items reach shoppers.
"""

from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import IDF, CountVectorizer, Normalizer, RegexTokenizer, StopWordsRemover
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import columns as c
from models.topk import rank_within

TEXT = "_text"
TOKENS = "_tokens"
WORDS = "_words"
TF = "_tf"
TFIDF = "_tfidf"
VECTOR = "_vector"


def item_text(catalog: DataFrame, *, extra_columns: tuple[str, ...] = ("brand",)) -> DataFrame:
    """(item_id, text): title, category and any present extra column; the category is also
    a single token of its own so items of one category always share a term."""
    parts = [F.coalesce(F.col(c.TITLE), F.lit(""))]
    category_token = F.regexp_replace(
        F.lower(F.coalesce(F.col(c.CATEGORY), F.lit(""))), r"\W+", "_"
    )
    parts.append(F.when(category_token != "", F.concat(F.lit("cat_"), category_token)))
    parts.extend(F.col(x) for x in extra_columns if x in catalog.columns)
    return catalog.select(c.ITEM_ID, F.concat_ws(" ", *parts).alias(TEXT))


def fit_tfidf(texts: DataFrame, *, min_df: float = 1.0) -> PipelineModel:
    pipeline = Pipeline(
        stages=[
            RegexTokenizer(inputCol=TEXT, outputCol=TOKENS, pattern=r"[^\w]+", minTokenLength=2),
            StopWordsRemover(inputCol=TOKENS, outputCol=WORDS),
            CountVectorizer(inputCol=WORDS, outputCol=TF, minDF=min_df),
            IDF(inputCol=TF, outputCol=TFIDF),
            Normalizer(inputCol=TFIDF, outputCol=VECTOR, p=2.0),
        ]
    )
    return pipeline.fit(texts)


def term_weights(vectors: DataFrame) -> DataFrame:
    """(item_id, term, weight) from the sparse unit vectors."""
    rows = vectors.select(c.ITEM_ID, VECTOR).rdd.flatMap(
        lambda r: [(r[0], int(i), float(v)) for i, v in zip(r[1].indices, r[1].values, strict=True)]
    )
    return vectors.sparkSession.createDataFrame(rows, "item_id string, term int, weight double")


def content_neighbours(
    catalog: DataFrame, *, top_n: int, max_term_share: float = 0.2, min_score: float = 0.05
) -> DataFrame:
    """(item_id, neighbour_id, score, rank): cosine similarity of TF-IDF vectors, top-N.

    Terms carried by more than ``max_term_share`` of the items are left out of the join:
    their IDF makes them nearly worthless and they would pair everything with everything.
    """
    texts = item_text(catalog)
    vectors = fit_tfidf(texts).transform(texts)
    weights = term_weights(vectors).cache()
    n_items = texts.count()
    doc_freq = weights.groupBy("term").agg(F.count(F.lit(1)).alias("_df"))
    useful = doc_freq.where(F.col("_df") <= F.lit(max(2, int(max_term_share * n_items))))
    index = weights.join(useful.select("term"), "term")
    left = index.select("term", F.col(c.ITEM_ID).alias("_a"), F.col("weight").alias("_wa"))
    right = index.select(
        "term", F.col(c.ITEM_ID).alias(c.NEIGHBOUR_ID), F.col("weight").alias("_wb")
    )
    scored = (
        left.join(right, "term")
        .where(F.col("_a") != F.col(c.NEIGHBOUR_ID))
        .groupBy("_a", c.NEIGHBOUR_ID)
        .agg(F.sum(F.col("_wa") * F.col("_wb")).alias(c.SCORE))
        .where(F.col(c.SCORE) >= min_score)
        .withColumnRenamed("_a", c.ITEM_ID)
    )
    return rank_within(scored, top_n, col_user=c.ITEM_ID, col_item=c.NEIGHBOUR_ID)
