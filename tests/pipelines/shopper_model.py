"""A seeded shopper model for the experiment tests: subjects with hidden preferred items, two
variants assigned by hash, recommendation lists of k items, clicks and purchases drawn from
the shopper's preferences alone. Nothing here decides an outcome: the variant only changes
how many preferred items its lists contain.

``simulate_counts`` (numpy, milliseconds) feeds the statistics checks over hundreds of seeds;
``simulate_lake`` turns the same draws into silver-shaped impression and event rows (plus
noise that must not be credited) for the Spark job, with the true per-variant counts the
job must recover.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from models.experiments import VariantCounts
from recolake.experiments import Experiment, Variant
from recolake.onlinestore import session_subject, user_subject

EXPERIMENT = "ranker"
VARIANTS = ("control", "treatment")


@dataclass(frozen=True)
class ShopperModel:
    subjects: int = 2000
    catalog: int = 200
    preferred: int = 5  # hidden preferred items per subject (>= k)
    impressions_per_subject: int = 2
    k: int = 5  # items per list
    p_pref: float = 0.25  # click probability of a shown preferred item
    p_base: float = 0.02  # ... of any other shown item
    p_cart: float = 0.5  # a click goes to the cart
    p_buy: float = 0.6  # a cart is bought
    #: Share of slots holding a preferred item, per variant: equal = A/A.
    preferred_share: dict[str, float] = field(
        default_factory=lambda: {"control": 0.05, "treatment": 0.05}
    )
    anonymous_share: float = 0.2  # subjects that are sessions, not users
    salt: str = "ranker-2026"


def assign(subject: str, salt: str) -> str:
    """Deterministic assignment by hash, the API's own (recolake.experiments): 50/50."""
    experiment = Experiment(EXPERIMENT, salt, tuple(Variant(v, 0.5) for v in VARIANTS))
    return experiment.assign(subject).name


@dataclass
class Draws:
    subject: np.ndarray  # (n,) subject index of each impression
    variant: np.ndarray  # (n,) variant name of each impression
    preferred: np.ndarray  # (n, k) the slot holds a preferred item
    click: np.ndarray  # (n, k)
    cart: np.ndarray
    buy: np.ndarray
    quantity: np.ndarray  # (n, k) ints
    price: np.ndarray  # (n, k) price of the shown item
    items: np.ndarray | None = None  # (n, k) catalog index of the shown item (lake only)


@functools.cache
def _assignments(subjects: int, salt: str) -> np.ndarray:
    return np.array([assign(f"subject-{i:05d}", salt) for i in range(subjects)])


def draw(model: ShopperModel, seed: int, *, items: bool = False) -> Draws:
    rng = np.random.default_rng(seed)
    prices = np.round(rng.uniform(1, 20, model.catalog), 1)
    variants_of = _assignments(model.subjects, model.salt)
    subject = np.repeat(np.arange(model.subjects), model.impressions_per_subject)
    variant = variants_of[subject]
    n, k = len(subject), model.k
    share = np.array([model.preferred_share[v] for v in variant])[:, None]
    preferred = rng.random((n, k)) < share
    click = rng.random((n, k)) < np.where(preferred, model.p_pref, model.p_base)
    cart = click & (rng.random((n, k)) < model.p_cart)
    buy = cart & (rng.random((n, k)) < model.p_buy)
    quantity = rng.integers(1, 4, (n, k))
    shown = None
    if items:
        # Hidden preferences; preferred slots take distinct preferred items, the others
        # distinct non-preferred ones, so a list never shows an item twice.
        prefs = np.argsort(rng.random((model.subjects, model.catalog)), axis=1)
        prefs = prefs[:, : model.preferred]
        is_pref = np.zeros((model.subjects, model.catalog), dtype=bool)
        np.put_along_axis(is_pref, prefs, True, axis=1)
        ranking = rng.random((n, model.catalog)) + is_pref[subject] * 2.0
        others = np.argsort(ranking, axis=1)[:, :k]
        mine = np.take_along_axis(
            prefs[subject], np.argsort(rng.random((n, model.preferred)), axis=1)[:, :k], axis=1
        )
        shown = np.where(preferred, mine, others)
        price = prices[shown]
    else:
        price = prices[rng.integers(0, model.catalog, (n, k))]
    return Draws(subject, variant, preferred, click, cart, buy, quantity, price, shown)


def true_counts(d: Draws) -> dict[str, VariantCounts]:
    """What happened, per variant, straight from the draws."""
    revenue = (d.buy * d.quantity * d.price).sum(axis=1)
    clicks, carts, buys = d.click.sum(axis=1), d.cart.sum(axis=1), d.buy.sum(axis=1)
    out = {}
    for v in VARIANTS:
        m = d.variant == v
        out[v] = VariantCounts(
            experiment=EXPERIMENT,
            variant=v,
            impressions=int(m.sum()),
            items_shown=int(m.sum() * d.click.shape[1]),
            clicks=int(clicks[m].sum()),
            carts=int(carts[m].sum()),
            purchases=int(buys[m].sum()),
            revenue=float(revenue[m].sum()),
            revenue_sq=float((revenue[m] ** 2).sum()),
            clicked_impressions=int((clicks[m] > 0).sum()),
            converted_impressions=int((buys[m] > 0).sum()),
        )
    return out


def simulate_counts(model: ShopperModel, seed: int) -> list[VariantCounts]:
    return list(true_counts(draw(model, seed)).values())


@dataclass
class Lake:
    impressions: list[tuple]  # silver.impressions shape (see IMPRESSION_FIELDS in the test)
    events: list[tuple]  # silver.events shape + recommendation_id
    truth: dict[str, VariantCounts]


def simulate_lake(model: ShopperModel, seed: int, ds: date, key: bytes) -> Lake:
    """Silver rows for one day of the experiment. Each subject's lists are hours apart and
    its events follow the list that caused them within two hours (before its next list), so
    "the last impression that showed the item" is the one that caused the event; half the
    events also carry their recommendation_id. Noise that must never be credited: views and
    purchases of items never shown, purchases 30 hours after the list, remove_from_cart."""
    d = draw(model, seed, items=True)
    assert d.items is not None
    rng = np.random.default_rng(seed + 1)
    start = datetime(ds.year, ds.month, ds.day)
    anonymous = rng.random(model.subjects) < model.anonymous_share
    user_key = [None if anonymous[i] else f"key-{i:05d}" for i in range(model.subjects)]
    session = [f"sess-{i:05d}" if anonymous[i] else None for i in range(model.subjects)]
    subject_of = [
        session_subject(session[i], key) if anonymous[i] else user_subject(user_key[i])
        for i in range(model.subjects)
    ]
    # Impression times: the first within 10 h of midnight, each next one 3-10 h later.
    per = model.impressions_per_subject
    offsets = rng.uniform(0, 10 * 3600, model.subjects)
    gaps = rng.uniform(3 * 3600, 10 * 3600, (model.subjects, per))
    gaps[:, 0] = 0
    seconds = (offsets[:, None] + np.cumsum(gaps, axis=1)).ravel()
    impressions, events = [], []
    n_events = 0

    def event(i, item, etype, when, qty=None, price=None, rec=None):
        nonlocal n_events
        n_events += 1
        events.append(
            (
                f"ev-{n_events}",
                user_key[i],
                item,
                etype,
                when,
                session[i],
                qty,
                price,
                "api",
                ds,
                when.date(),
                rec,
            )
        )

    for j in range(len(d.subject)):
        i = int(d.subject[j])
        rec = f"rec-{seed}-{j}"
        shown_at = start + timedelta(seconds=float(seconds[j]))
        for slot in range(model.k):
            item = f"item-{int(d.items[j, slot]):04d}"
            impressions.append(
                (
                    rec,
                    user_key[i],
                    session[i],
                    subject_of[i],
                    EXPERIMENT,
                    str(d.variant[j]),
                    "recommendations",
                    item,
                    slot + 1,
                    "als",
                    shown_at,
                    shown_at.date(),
                )
            )
            if not d.click[j, slot]:
                continue
            explicit = rec if rng.random() < 0.5 else None
            t = shown_at + timedelta(minutes=float(rng.uniform(1, 60)))
            event(i, item, "view", t, rec=explicit)
            if rng.random() < 0.3:
                event(i, item, "remove_from_cart", t + timedelta(seconds=5))
            if d.cart[j, slot]:
                t += timedelta(minutes=float(rng.uniform(1, 30)))
                event(i, item, "add_to_cart", t, qty=int(d.quantity[j, slot]), rec=explicit)
            if d.buy[j, slot]:
                t += timedelta(minutes=float(rng.uniform(1, 30)))
                price = float(d.price[j, slot])
                event(i, item, "purchase", t, int(d.quantity[j, slot]), price, explicit)
        if j % 10 == 0:  # noise: never shown, or long after the window
            noise_at = shown_at + timedelta(minutes=5)
            event(i, f"unshown-{j}", "view", noise_at, rec=rec)
            event(i, f"unshown-{j}", "purchase", noise_at, 1, 9.5, rec)
            late = shown_at + timedelta(hours=30)
            item = f"item-{int(d.items[j, 0]):04d}"
            if (j + 1) % per == 0:  # the subject's last list: no later list shows it
                event(i, item, "purchase", late, 1, 9.5, rec)
    return Lake(impressions, events, true_counts(d))
