"""Seeded synthetic shop data in the generic CSV format (README "Data formats").

    .venv/bin/python benchmarks/generate_shop.py --items 100000 --events 1000000 --out /tmp/shop

Writes ``items.csv[.gz]`` (item_id,title,category,price,brand) and ``events.csv[.gz]``
(user_id,item_id,event_type,timestamp,session_id,quantity,price,event_id). Everything is drawn
with numpy from one seed and written in chunks, so 1M items / 10M events stay within a few
hundred MB of memory:

- categories: ``department > aisle`` leaves with Zipf-like sizes; brands Zipf-like too;
- titles: brand + a few very common words (``pack``, ``organic``, ``500g``... each in a large
  share of the catalog) + words from the category's own vocabulary + words from a global
  long-tailed (Zipf) vocabulary + a size, so term document frequencies span 1 to ~30%;
- events: sessions of views over items drawn by Zipf popularity (half within the session's
  category), some views go to the cart and some carts are purchased (view -> add_to_cart ->
  purchase funnels), timestamps over ``--days`` ending on ``--end``.

Nothing generated belongs in git.
"""

from __future__ import annotations

import argparse
import gzip
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

# Words in a large share of product titles (probability per title): the terms whose document
# frequency makes a naive inverted-index self-join quadratic.
COMMON = {
    "pack": 0.30,
    "organic": 0.15,
    "500g": 0.12,
    "fresh": 0.10,
    "large": 0.08,
    "value": 0.06,
    "1kg": 0.05,
    "classic": 0.05,
}
SIZES = ["100g", "250g", "1l", "2l", "330ml", "6x", "12x", "750ml", "200g", "50g", "xl", "mini"]
DEPARTMENTS = [
    "Grocery", "Dairy", "Bakery", "Drinks", "Frozen", "Household", "Beauty", "Baby", "Pets",
    "Snacks", "Produce", "Meat", "Health", "Home", "Garden", "Toys",
]  # fmt: skip
SYLLABLES = [
    "ba", "ko", "ri", "ta", "mel", "son", "dra", "vin", "lo", "pe", "qua", "zi", "mar", "tor",
    "chi", "nu", "fal", "gre", "po", "sa", "ven", "bri", "cu", "do", "ler", "mi", "ost", "ra",
]  # fmt: skip


def words(rng: np.random.Generator, n: int, prefix: str = "") -> np.ndarray:
    """n distinct pronounceable words (2-4 syllables)."""
    out: dict[str, None] = {}
    syl = np.array(SYLLABLES)
    while len(out) < n:
        k = rng.integers(2, 5, size=n)
        picks = rng.integers(0, len(syl), size=(n, 4))
        for i in range(n):
            out.setdefault(prefix + "".join(syl[picks[i, : k[i]]]), None)
            if len(out) == n:
                break
    return np.array(list(out), dtype=object)


def zipf_probs(n: int, exponent: float, offset: float = 1.0) -> np.ndarray:
    p = 1.0 / np.power(np.arange(n) + offset, exponent)
    return p / p.sum()


def open_out(path: Path, gz: bool):
    return gzip.open(f"{path}.gz", "wt", newline="") if gz else open(path, "w", newline="")


def generate_items(rng, n_items, out: Path, gz: bool, chunk: int):
    """Writes items; returns (category per item, categories' names) for the events."""
    n_cat = max(8, n_items // 150)
    aisles = words(rng, n_cat)
    cat_names = np.array(
        [f"{DEPARTMENTS[i % len(DEPARTMENTS)]} > {a.title()}" for i, a in enumerate(aisles)],
        dtype=object,
    )
    cat_p = zipf_probs(n_cat, 0.8, offset=5.0)
    item_cat = rng.choice(n_cat, size=n_items, p=cat_p)
    n_brands = max(5, n_items // 40)
    brands = np.array([w.title() for w in words(rng, n_brands)], dtype=object)
    brand_p = zipf_probs(n_brands, 1.0, offset=3.0)
    vocab = words(rng, max(2000, min(200_000, n_items // 2)))
    vocab_p = zipf_probs(len(vocab), 1.05, offset=2.0)
    cat_vocab_size = 40
    cat_vocab = words(rng, n_cat * cat_vocab_size, prefix="").reshape(n_cat, cat_vocab_size)
    cat_vocab_p = zipf_probs(cat_vocab_size, 1.0)
    common_words = np.array(list(COMMON), dtype=object)
    common_p = np.array(list(COMMON.values()))
    cat_price = np.exp(rng.normal(1.5, 0.8, size=n_cat))
    sizes = np.array(SIZES, dtype=object)
    item_price = np.round(cat_price[item_cat] * np.exp(rng.normal(0, 0.4, size=n_items)), 2)

    with open_out(out / "items.csv", gz) as f:
        f.write("item_id,title,category,price,brand\n")
        for start in range(0, n_items, chunk):
            m = min(chunk, n_items - start)
            cats = item_cat[start : start + m]
            brand = brands[rng.choice(n_brands, size=m, p=brand_p)]
            has_common = rng.random((m, len(common_words))) < common_p
            n_global = rng.integers(1, 4, size=m)
            glob = vocab[rng.choice(len(vocab), size=(m, 3), p=vocab_p)]
            n_local = rng.integers(1, 3, size=m)
            local = cat_vocab[cats[:, None], rng.choice(cat_vocab_size, size=(m, 2), p=cat_vocab_p)]
            size = sizes[rng.integers(0, len(sizes), size=m)]
            has_size = rng.random(m) < 0.6
            titles = []
            for i in range(m):
                parts = [brand[i]]
                parts.extend(common_words[has_common[i]])
                parts.extend(local[i, : n_local[i]])
                parts.extend(glob[i, : n_global[i]])
                if has_size[i]:
                    parts.append(size[i])
                titles.append(" ".join(parts))
            price = item_price[start : start + m]
            pd.DataFrame(
                {
                    "item_id": np.char.add("P", (np.arange(start, start + m) + 1).astype(str)),
                    "title": titles,
                    "category": cat_names[cats],
                    "price": price,
                    "brand": brand,
                }
            ).to_csv(f, header=False, index=False)
    return item_cat, n_cat, item_price


def generate_events(rng, n_items, n_events, item_cat, item_price, n_cat, out, gz, chunk, days, end):
    """Sessions of views (Zipf popularity, half within the session's category) with funnels."""
    popularity = zipf_probs(n_items, 1.1, offset=10.0)[rng.permutation(n_items)]
    by_cat_order = np.argsort(item_cat, kind="stable")
    cat_start = np.searchsorted(item_cat[by_cat_order], np.arange(n_cat + 1))
    n_users = max(10, n_events // 25)
    user_p = zipf_probs(n_users, 0.7, offset=20.0)
    end_s = int(end.timestamp())
    span = days * 86400
    written = 0
    session_no = 0
    event_no = 0
    with open_out(out / "events.csv", gz) as f:
        f.write("user_id,item_id,event_type,timestamp,session_id,quantity,price,event_id\n")
        while written < n_events:
            n_sess = max(1, min(chunk, n_events - written) // 6)
            views = rng.geometric(0.2, size=n_sess)  # mean 5 views a session
            sess = np.repeat(np.arange(n_sess), views)
            nv = len(sess)
            first = rng.choice(n_items, size=n_sess, p=popularity)
            item = rng.choice(n_items, size=nv, p=popularity)
            same_cat = rng.random(nv) < 0.5
            c = item_cat[first][sess]
            lo, hi = cat_start[c], cat_start[c + 1]
            pick = lo + (rng.random(nv) * (hi - lo)).astype(np.int64)
            item = np.where(same_cat, by_cat_order[np.minimum(pick, n_items - 1)], item)
            user = rng.choice(n_users, size=n_sess, p=user_p)[sess]
            t0 = end_s - rng.integers(0, span, size=n_sess)
            offs = np.cumsum(rng.integers(5, 120, size=nv))
            sess_first = np.searchsorted(sess, np.arange(n_sess))
            ts = t0[sess] + offs - offs[sess_first][sess]
            cart = rng.random(nv) < 0.12
            buy = cart & (rng.random(nv) < 0.45)
            kinds = [np.zeros(nv, np.int8)]
            rows = [np.arange(nv)]
            kinds += [np.ones(cart.sum(), np.int8), np.full(buy.sum(), 2, np.int8)]
            rows += [np.flatnonzero(cart), np.flatnonzero(buy)]
            kind = np.concatenate(kinds)
            row = np.concatenate(rows)
            order = np.lexsort((kind, row))
            kind, row = kind[order], row[order]
            m = len(row)
            qty = np.where(kind > 0, rng.integers(1, 4, size=m), 1)
            stamp = ts[row] + kind * 30
            ts_text = pd.to_datetime(np.minimum(stamp, end_s), unit="s").strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            frame = pd.DataFrame(
                {
                    "user_id": np.char.add("U", user[row].astype(str)),
                    "item_id": np.char.add("P", (item[row] + 1).astype(str)),
                    "event_type": np.array(["view", "add_to_cart", "purchase"])[kind],
                    "timestamp": ts_text,
                    "session_id": np.char.add("S", (sess[row] + session_no).astype(str)),
                    "quantity": qty,
                    "price": item_price[item[row]],
                    "event_id": np.char.add("E", (np.arange(m) + event_no).astype(str)),
                }
            )
            take = min(m, n_events - written)
            frame.iloc[:take].to_csv(f, header=False, index=False)
            written += take
            session_no += n_sess
            event_no += m
    return written


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--end", default="2024-05-01", help="last event date (UTC)")
    p.add_argument("--gzip", action="store_true", help="write .csv.gz")
    p.add_argument("--chunk", type=int, default=200_000, help="rows per written chunk")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    item_cat, n_cat, item_price = generate_items(rng, args.items, args.out, args.gzip, args.chunk)
    print(f"items: {args.items} in {n_cat} categories, {time.perf_counter() - t:.1f}s")
    end = datetime.fromisoformat(args.end).replace(hour=23, minute=59, tzinfo=UTC)
    n = generate_events(
        rng, args.items, args.events, item_cat, item_price, n_cat, args.out, args.gzip, args.chunk,
        args.days, end,
    )  # fmt: skip
    print(f"events: {n}, total {time.perf_counter() - t:.1f}s -> {args.out}")


if __name__ == "__main__":
    main()
