"""Online experiments and the served weights: assignment and the experiments file (pure
Python), then the API against a real Redis: the live publication's weights rank, an explicit
settings override wins and says so, each variant gets its own weights or publication, every
response has its own recommendation id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis

from online.app import create_app
from recolake.experiments import (
    DEFAULT_VARIANT,
    ExperimentConfigError,
    Variant,
    assign,
    load,
    parse,
)
from recolake.onlinestore import KeyLayout, user_subject
from recolake.onlinestore.batch import BatchWriter
from recolake.privacy import pseudonymise
from recolake.ranking import Filters, Inputs, ItemInfo, Weights, blend
from tests.conftest import TEST_KEY, make_settings
from tests.online.conftest import CATALOG

ROOT = Path(__file__).resolve().parents[2]


def experiment(salt: str = "s1", **shares: float):
    return parse(
        {
            "name": "exp",
            "salt": salt,
            "variants": [{"name": n, "share": s} for n, s in shares.items()],
        }
    )


# --- assignment -------------------------------------------------------------------------------


def test_shares_are_respected_over_10k_subjects():
    exp = experiment(a=0.2, b=0.3, c=0.5)
    counts = Counter(exp.assign(f"u:{i:064x}").name for i in range(10_000))
    # binomial sd at 10k is <= 0.005: 0.02 is four of them
    for name, share in (("a", 0.2), ("b", 0.3), ("c", 0.5)):
        assert abs(counts[name] / 10_000 - share) < 0.02, counts


def test_a_zero_share_variant_gets_nobody_and_one_variant_gets_everybody():
    exp = experiment(off=0.0, on=1.0)
    assert {exp.assign(f"s:{i}").name for i in range(2_000)} == {"on"}


def test_assignment_is_deterministic_and_the_salt_reshuffles():
    subjects = [f"u:{i}" for i in range(2_000)]
    first = [experiment(a=0.5, b=0.5).assign(s).name for s in subjects]
    again = [experiment(a=0.5, b=0.5).assign(s).name for s in subjects]
    assert first == again
    other = [experiment("s2", a=0.5, b=0.5).assign(s).name for s in subjects]
    changed = sum(x != y for x, y in zip(first, other, strict=True)) / len(subjects)
    assert 0.4 < changed < 0.6  # independent halves: about half move


def test_assignment_is_stable_across_processes(tmp_path):
    """Two fresh interpreters with different hash seeds assign every subject the same
    variant as this process (nothing depends on Python's per-process hash salt)."""
    spec = tmp_path / "exp.json"
    spec.write_text(
        json.dumps(
            {
                "name": "exp",
                "salt": "s1",
                "variants": [{"name": "a", "share": 0.3}, {"name": "b", "share": 0.7}],
            }
        )
    )
    code = (
        "import sys; from recolake.experiments import load; e = load(sys.argv[1]); "
        "print(','.join(e.assign(f'u:{i}').name for i in range(500)))"
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code, str(spec)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(done.stdout.strip().split(","))
    here = [load(spec).assign(f"u:{i}").name for i in range(500)]
    assert outputs[0] == outputs[1] == here
    assert set(here) == {"a", "b"}


def test_experiments_import_neither_redis_nor_pyspark():
    code = (
        "import sys\n"
        "for name in ('redis', 'pyspark'): sys.modules[name] = None\n"
        "import recolake.experiments\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_no_experiment_or_no_subject_is_the_default_variant():
    none = assign(None, "u:x")
    assert (none.experiment_name, none.variant_name) == (None, DEFAULT_VARIANT)
    anonymous = assign(experiment(a=1.0), None)
    assert (anonymous.experiment_name, anonymous.variant_name) == (None, DEFAULT_VARIANT)
    assigned = assign(experiment(a=1.0), "s:abc")
    assert (assigned.experiment_name, assigned.variant_name) == ("exp", "a")


def test_variant_weights_change_only_what_they_name():
    base = Weights(als=0.7, popular=0.1)
    got = Variant("v", 1.0, {"popular": 0.9}).apply(base)
    assert got == replace(base, popular=0.9)
    assert Variant("v", 1.0).apply(base) is base


# --- the file -----------------------------------------------------------------------------------


def test_toml_and_json_files_declare_the_same_experiment(tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text(
        'name = "boost"\nsalt = "2026-12"\n'
        '[[variants]]\nname = "control"\nshare = 0.5\n'
        '[[variants]]\nname = "more-popular"\nshare = 0.5\npublication = "v9"\n'
        "weights = { popular = 0.8, als = 1 }\n"
    )
    doc = {
        "name": "boost",
        "salt": "2026-12",
        "variants": [
            {"name": "control", "share": 0.5},
            {
                "name": "more-popular",
                "share": 0.5,
                "publication": "v9",
                "weights": {"popular": 0.8, "als": 1},
            },
        ],
    }
    js = tmp_path / "exp.json"
    js.write_text(json.dumps(doc))
    assert load(toml) == load(js)
    variant = load(toml).variants[1]
    assert variant.weights == {"popular": 0.8, "als": 1.0}
    assert variant.publication == "v9"


GOOD = {"name": "e", "salt": "s", "variants": [{"name": "a", "share": 1.0}]}


def variants(*docs):
    return {**GOOD, "variants": list(docs)}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1], "expected a table/object"),
        ({**GOOD, "salt": ""}, "'salt' must be a non-empty string"),
        ({**GOOD, "nme": "x"}, "unknown keys ['nme']"),
        ({**GOOD, "name": "no spaces"}, "name 'no spaces' must match"),
        ({**GOOD, "variants": []}, "'variants' must be a non-empty list"),
        (
            variants({"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}),
            "shares must sum to 1, they sum to 0.9 (a=0.5, b=0.4)",
        ),
        (
            variants({"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}),
            "unique, repeated: ['a']",
        ),
        (variants({"name": "a", "share": -0.5}), "'share' must be a number in [0, 1]"),
        (variants({"name": "a", "share": True}), "'share' must be a number in [0, 1]"),
        (variants({"name": "default", "share": 1.0}), "'default' is reserved"),
        (
            variants({"name": "a", "share": 1.0, "weights": {"popularity": 1.0}}),
            "unknown blend weights ['popularity']",
        ),
        (
            variants({"name": "a", "share": 1.0, "weights": {"als": -1}}),
            "blend weights must be >= 0",
        ),
        (
            variants({"name": "a", "share": 1.0, "weights": {"als": "high"}}),
            "blend weights must be numbers",
        ),
        (variants({"name": "a", "share": 1.0, "publication": ""}), "'publication' must be"),
        (variants({"name": "a", "share": 1.0, "colour": "red"}), "unknown keys ['colour']"),
    ],
)
def test_invalid_files_are_refused_with_the_reason(doc, message):
    with pytest.raises(ExperimentConfigError) as failure:
        parse(doc, source="exp.json")
    assert message in str(failure.value)
    assert str(failure.value).startswith("experiments file exp.json: ")


def test_unreadable_or_malformed_files_name_the_file(tmp_path):
    with pytest.raises(ExperimentConfigError, match="cannot read it"):
        load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ExperimentConfigError, match=r"broken\.toml: not valid TOML"):
        load(broken)


def test_the_api_refuses_to_start_with_an_invalid_file(tmp_path):
    bad = tmp_path / "exp.json"
    bad.write_text(json.dumps(variants({"name": "a", "share": 0.5})))
    with pytest.raises(ExperimentConfigError, match="sum to 1"):
        create_app(make_settings(tmp_path, experiments_file=str(bad)))


# --- the API against a real Redis --------------------------------------------------------------

ALS = [("i1", 0.9), ("i2", 0.8), ("p1", 0.7)]
POPULAR = [("p1", 30.0), ("p2", 20.0), ("p3", 10.0)]
#: Weights under which popular items beat the ALS list (the defaults rank ALS first).
POPULAR_FIRST = Weights(als=0.1, popular=1.0)


def publish(url, settings, version, users, *, weights=None, als=ALS, grace=5):
    """The conftest sample's catalog, ``als`` for each of ``users``, popular p1..p3; live."""
    writer = BatchWriter(
        url=url,
        layout=KeyLayout(settings.redis_namespace),
        version=version,
        buckets=settings.redis_buckets,
    )
    writer.write_user_lists([(pseudonymise(u, TEST_KEY.encode()), als) for u in users])
    writer.write_catalog(CATALOG)
    client = redis.Redis.from_url(url, decode_responses=True)
    writer.go_live(
        client=client,
        popular=POPULAR,
        meta={"model_version": "7", "ds": "2026-01-01"},
        grace_seconds=grace,
        weights=weights,
    )
    client.close()


def expected(weights: Weights, k: int = 5, als=ALS) -> list[str]:
    """What THE ranker makes of the published inputs with these weights."""
    catalog = {i: ItemInfo(t, c, a) for i, t, c, a in CATALOG}
    ranked = blend(
        Inputs(als=als, popular=POPULAR, catalog=catalog),
        weights=weights,
        filters=Filters(max_per_category=3),
        k=k,
    )
    return [r.item_id for r in ranked]


def items_of(body: dict) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def get(api, path: str, **params) -> dict:
    response = httpx.get(f"{api.url}{path}", params={"k": 5, **params})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def settings(redis_client, redis_server, tmp_path):
    return make_settings(tmp_path, redis_url=redis_server.url)


@pytest.mark.redis
def test_the_live_publications_weights_rank(settings, redis_server, api_server_factory):
    assert expected(POPULAR_FIRST) != expected(Weights())  # the test can tell them apart
    publish(redis_server.url, settings, "v7", ["alice"], weights=POPULAR_FIRST)
    body = get(api_server_factory(settings), "/v1/recommendations/alice")
    assert items_of(body) == expected(POPULAR_FIRST)
    assert body["weights_source"] == "publication" and body["publication"] == "v7"
    assert (body["experiment"], body["variant"]) == (None, "default")

    publish(redis_server.url, settings, "v8", ["alice"])  # a model version without weights
    body = get(api_server_factory(settings), "/v1/recommendations/alice")
    assert body["publication"] == "v8"
    assert items_of(body) == expected(Weights())
    assert body["weights_source"] == "default"


@pytest.mark.redis
def test_an_explicit_settings_override_wins_and_is_reported(
    settings, redis_server, api_server_factory
):
    publish(redis_server.url, settings, "v7", ["alice"], weights=POPULAR_FIRST)
    override = settings.model_copy(update={"blend_weight_als": 5.0})  # as RECOLAKE_BLEND_...
    body = get(api_server_factory(override), "/v1/recommendations/alice")
    # only the weight set explicitly changes; the publication's others stay
    assert items_of(body) == expected(replace(POPULAR_FIRST, als=5.0))
    assert items_of(body) != expected(POPULAR_FIRST)
    assert body["weights_source"] == "settings"


def users_per_variant(exp, wanted: set[str]) -> dict[str, str]:
    """A user id for each variant name in ``wanted`` (assigned as the API does)."""
    found: dict[str, str] = {}
    for n in range(1_000):
        user = f"user-{n}"
        subject = user_subject(pseudonymise(user, TEST_KEY.encode()))
        found.setdefault(exp.assign(subject).name, user)
        if wanted <= found.keys():
            return found
    raise AssertionError(f"no user found for some of {wanted}")


@pytest.mark.redis
def test_each_variant_gets_its_own_weights(settings, redis_server, api_server_factory, tmp_path):
    spec = {
        "name": "popular-boost",
        "salt": "2026-12",
        "variants": [
            {"name": "control", "share": 0.5},
            {"name": "popular-first", "share": 0.5, "weights": POPULAR_FIRST.as_dict()},
        ],
    }
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(spec))
    users = users_per_variant(load(path), {"control", "popular-first"})
    publish(redis_server.url, settings, "v7", list(users.values()))
    api = api_server_factory(settings.model_copy(update={"experiments_file": str(path)}))

    control = get(api, f"/v1/recommendations/{users['control']}")
    boosted = get(api, f"/v1/recommendations/{users['popular-first']}")
    assert (control["experiment"], control["variant"]) == ("popular-boost", "control")
    assert (boosted["experiment"], boosted["variant"]) == ("popular-boost", "popular-first")
    assert items_of(control) == expected(Weights())
    assert control["weights_source"] == "default"  # the publication carries none
    assert items_of(boosted) == expected(POPULAR_FIRST)
    assert boosted["weights_source"] == "experiment"
    # the same subject keeps its variant; the visitor route assigns the same way
    again = get(api, "/v1/recommendations", user_id=users["popular-first"])
    assert again["variant"] == "popular-first" and items_of(again) == items_of(boosted)
    # nothing to assign by: outside the experiment
    nobody = get(api, "/v1/recommendations")
    assert (nobody["experiment"], nobody["variant"]) == (None, "default")


@pytest.mark.redis
def test_a_variant_serves_its_publication_or_says_it_fell_back(
    settings, redis_server, api_server_factory, tmp_path
):
    old_als = [("shoe", 0.9), ("boot", 0.8)]
    publish(redis_server.url, settings, "v-old", ["alice"], als=old_als)
    publish(redis_server.url, settings, "v7", ["alice"], grace=300)  # v-old kept 300 s

    def api_with(publication: str):
        path = tmp_path / f"{publication}.toml"
        path.write_text(
            f'name = "pinned"\nsalt = "x"\n[[variants]]\nname = "old"\nshare = 1.0\n'
            f'publication = "{publication}"\n'
        )
        return api_server_factory(settings.model_copy(update={"experiments_file": str(path)}))

    held = get(api_with("v-old"), "/v1/recommendations/alice")
    assert held["publication"] == "v-old" and "publication_fallback" not in held
    assert items_of(held) == expected(Weights(), als=old_als)

    gone = get(api_with("v-gone"), "/v1/recommendations/alice")
    assert gone["publication"] == "v7" and gone["publication_fallback"] == "v-gone"
    assert items_of(gone) == expected(Weights())
    assert gone["variant"] == "old"


@pytest.mark.redis
def test_every_response_has_its_own_recommendation_id(settings, redis_server, api_server_factory):
    publish(redis_server.url, settings, "v7", ["alice"])
    api = api_server_factory(settings)
    bodies = [get(api, "/v1/recommendations/alice") for _ in range(3)]
    bodies += [get(api, "/v1/recommendations", session_id="s1") for _ in range(2)]
    similar = httpx.get(f"{api.url}/v1/items/shoe/similar").json()
    bodies.append(similar)
    ids = [b["recommendation_id"] for b in bodies]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert (similar["experiment"], similar["variant"]) == (None, "default")
