"""The /ui page in headless Chromium (Debian's package, driven by Playwright; never
`playwright install`) against the real API, real Redis with a sample publication, and real
MLflow runs: the page loads without console errors, a known user is found by id prefix, their
cards show titles and prices, a click posts an event and the list follows, reads never carry
the write token (and work with the read token alone), the dashboard renders its tables.
Screenshots go to ``var/test-artifacts/screenshots/`` of the checkout (git-ignored; or
``$RECOLAKE_TEST_ARTIFACTS/screenshots``), a stable folder CI can keep; their paths are
printed and listed in the session's summary (tests/browser/conftest.py).

The streaming job's Redis side is run as a thread here (``StreamApplier``: the API's landed
event files -> ``StreamWriter.write_batch``, the code the streaming job's Redis query calls):
starting the Spark streaming job would cost a minute of the suite for the same writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import mlflow
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from online.services import dashboard
from pipelines.evaluate import metric_key
from pipelines.nightly import log_timing
from recolake import tracking
from recolake.eventlog import is_impression
from recolake.onlinestore import RedisTimeouts, connect, session_subject, user_subject
from recolake.onlinestore import stream as st
from recolake.privacy import pseudonymise
from recolake.settings import PROJECT_ROOT, Settings
from recolake.timing import Step, StepTimer
from recolake.validation import parse_timestamp
from tests.conftest import make_settings
from tests.online.conftest import PRICES, publish_sample

pytestmark = [pytest.mark.browser, pytest.mark.redis]

READ_TOKEN = "read-secret-1"
WRITE_TOKEN = "write-secret-2"
#: Where the screenshots go: a stable folder of the checkout (git-ignored), not a tmp dir.
SCREENSHOTS = (
    Path(os.environ.get("RECOLAKE_TEST_ARTIFACTS") or PROJECT_ROOT / "var" / "test-artifacts")
    / "screenshots"
)
#: Screenshots saved in this session (the conftest's summary lists them).
SAVED: list[Path] = []
PNG = b"\x89PNG\r\n\x1a\n"


class StreamApplier:
    """Applies every event the API lands (one file per request) through the StreamWriter,
    as the streaming job does; impressions are skipped (the job ignores them too)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.landing = Path(settings.landing_dir)
        self.client = connect(
            settings.redis_url, RedisTimeouts(connect_seconds=1, socket_seconds=5)
        )
        self.writer = st.StreamWriter.from_settings(self.client, settings)
        self.key = settings.require_pseudonymisation_key()
        self.seen: set[str] = set()
        self.applied: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.batch = 0

    def rows(self, event: dict) -> list[dict]:
        user = event.get("user_id")
        session = event.get("session_id")
        user_subj = user_subject(pseudonymise(user, self.key)) if user else None
        session_subj = session_subject(session, self.key) if session else None
        ts = parse_timestamp(event["timestamp"]).timestamp()
        weight = self.settings.event_weights[event["event_type"]]
        return [
            {
                st.SUBJECT: subject,
                st.PRIMARY: user_subj or session_subj,
                st.EVENT_ID: event["event_id"],
                st.ITEM_ID: event["item_id"],
                st.EVENT_TYPE: event["event_type"],
                st.TS: ts,
                st.WEIGHT: weight,
            }
            for subject in (user_subj, session_subj)
            if subject
        ]

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for path in sorted(self.landing.glob("events-*.jsonl")):
                if path.name in self.seen:
                    continue
                self.seen.add(path.name)
                records = [json.loads(line) for line in path.read_text().splitlines() if line]
                events = [r for r in records if not is_impression(r)]
                if not events:
                    continue
                self.batch += 1
                rows = [row for e in events for row in self.rows(e)]
                self.writer.write_batch("browser-test", self.batch, rows, time.time())
                self.applied.extend(events)

    def __enter__(self) -> StreamApplier:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.client.close()


def log_sample_runs(settings: Settings) -> None:
    """A nightly's step times, an evaluation's metrics per model and experiment results, as
    pipelines/nightly.py, evaluate.py and experiments.py log them (real MLflow, tmp store):
    the nightly's run through its own ``log_timing`` (StepTimer's metric names), the
    evaluation's metrics named by its ``metric_key``, so a renamed metric fails here."""
    timer = StepTimer(steps=[Step("ingest", 1.5), Step("train", 12.25)])
    log_timing(settings, date(2026, 1, 1), timer, 14.0)
    tracking.configure(settings)
    with mlflow.start_run(run_name="evaluate-2026-01-01"):
        mlflow.set_tags({tracking.STEP_TAG: "evaluate", "ds": "2026-01-01"})
        mlflow.log_metrics(
            {metric_key("als", "ndcg@10"): 0.3125, metric_key("popular", "ndcg@10"): 0.125}
        )
    row = {"experiment": "blend-test", "variant": "treatment", "impressions": 40}
    row.update({"is_control": False, "ctr": 0.25, "ctr_low": 0.125, "ctr_high": 0.4})
    with mlflow.start_run(run_name="experiments-2026-01-01"):
        mlflow.set_tags({tracking.STEP_TAG: "experiments", "ds": "2026-01-01"})
        mlflow.log_dict([row], "experiment_results.json")
    plot = Path(settings.reports_dir) / "2026-01-01" / "evaluation-report" / "ndcg.png"
    plot.parent.mkdir(parents=True)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(["als", "popular"], [0.3125, 0.125])
    fig.savefig(plot)
    plt.close(fig)


@pytest.fixture
def site(tmp_path, redis_server, redis_client, api_server_factory):
    settings = make_settings(
        tmp_path, redis_server.url, api_token=WRITE_TOKEN, api_read_token=READ_TOKEN
    )
    publish_sample(redis_server.url, settings)
    log_sample_runs(settings)
    server = api_server_factory(settings)
    with StreamApplier(settings) as applier:
        yield server, applier


@pytest.fixture
def page():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("no chromium on PATH: `make test` installs Debian's package")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.console_errors = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        yield page
        browser.close()


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot under SCREENSHOTS (the previous run's file removed first, so
    what is checked is this run's): a non-empty PNG, its path printed."""
    path = SCREENSHOTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000, (path, len(data))
    print(f"screenshot: {path}")
    SAVED.append(path)
    return path


def enter_tokens(page: Page, read: str = READ_TOKEN, write: str = WRITE_TOKEN) -> None:
    page.fill("#read-token", read)
    page.fill("#write-token", write)
    page.click("#tokens button")


def test_the_page_source_holds_no_token(site):
    server, applier = site
    for name in ("", "app.js", "app.css"):
        body = httpx.get(f"{server.url}/ui/{name}").text
        assert body and WRITE_TOKEN not in body and READ_TOKEN not in body
    assert httpx.get(f"{server.url}/v1/dashboard").status_code == 401  # reads need a token
    plot = f"{server.url}/ui/reports/2026-01-01/evaluation-report/ndcg.png"
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    assert httpx.get(plot).status_code == 401
    assert httpx.get(plot, headers=read).content.startswith(b"\x89PNG")
    (Path(applier.settings.reports_dir) / "2026-01-01" / "evaluation.json").write_text("{}")
    # only images under reports_dir are served
    assert (
        httpx.get(
            plot.replace("evaluation-report/ndcg.png", "evaluation.json"), headers=read
        ).status_code
        == 404
    )


def test_a_click_posts_a_view_and_the_list_follows(site, page):
    server, applier = site
    posts = []
    sent = []  # (method, path, Authorization) of every API request the page made
    page.on("request", lambda r: r.method == "POST" and posts.append((r.url, r.post_data)))
    page.on(
        "request",
        lambda r: (
            "/v1/" in r.url
            and sent.append((r.method, r.url.split("?")[0], r.headers.get("authorization")))
        ),
    )
    page.goto(f"{server.url}/ui/")
    enter_tokens(page)
    # "pick a known user": the publication's example users, suggested by prefix
    page.fill("#user-id", "al")
    expect(page.locator("#known-users option")).to_have_count(1)
    assert page.locator("#known-users option").get_attribute("value") == "alice"
    expect(page.locator("#users-hint")).to_have_text("1 of 2 example users match")
    page.fill("#user-id", "alice")
    page.click("#show")
    cards = page.locator("#cards .card")
    expect(cards.first).to_be_visible()
    titles = cards.locator("h4").all_inner_texts()
    assert titles[:3] == ["Lamp", "Rug", "Mug"]  # alice's published list, by catalog title
    prices = cards.locator(".price").all_inner_texts()
    assert prices[:3] == [f"{PRICES[i]:.2f}" for i in ("i1", "i2", "p1")]  # published prices
    assert page.locator("#recent li").count() == 0
    first = shot(page, "playground-before")

    page.locator("#cards .card", has_text="Rug").locator("h4").click()
    expect(page.locator("#recent li[data-item=i2]")).to_be_visible(timeout=5000)
    expect(page.locator("#status")).to_contain_text("list changed after")
    assert [json.loads(data)["item_id"] for url, data in posts if url.endswith("/v1/events")] == [
        "i2"
    ]
    assert [(e["item_id"], e["event_type"], e["user_id"]) for e in applier.applied] == [
        ("i2", "view", "alice")
    ]
    after = shot(page, "playground-after")
    assert first != after and after.is_file()
    # the write token went only with the post; every read carried the read token
    assert {(m, auth) for m, path, auth in sent if path.endswith("/v1/events")} == {
        ("POST", f"Bearer {WRITE_TOKEN}")
    }
    reads = [(path, auth) for m, path, auth in sent if m == "GET"]
    assert reads and all(auth == f"Bearer {READ_TOKEN}" for _, auth in reads), reads
    assert page.console_errors == []


def test_a_fresh_visitor_and_the_item_page(site, page):
    server, applier = site
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.goto(f"{server.url}/ui/")
    enter_tokens(page, write="")  # the read token alone: the page reads, and cannot post
    page.click("#fresh")
    session = page.input_value("#session-id")
    assert session.startswith("visitor-")
    expect(page.locator("#cards .card").first).to_be_visible()
    assert page.locator("#cards h4").all_inner_texts()[:3] == ["Mug", "Pan", "Cup"]  # popular
    pan = page.locator("#cards .card", has_text="Pan")
    pan.get_by_role("button", name="Cart").click()
    expect(page.locator("#status")).to_contain_text("posting needs the write token")
    assert posts == [] and applier.applied == []  # nothing sent, nothing failed loudly

    enter_tokens(page)
    pan.get_by_role("button", name="Cart").click()
    expect(page.locator("#recent li[data-item=p2]")).to_be_visible(timeout=5000)

    page.goto(f"{server.url}/ui/#item")
    page.fill("#item-id", "shoe")
    page.click("#item-form button")
    expect(page.locator("#item-title")).to_have_text("Red shoe (shoes)")
    expect(page.locator("#item-price")).to_have_text(f"{PRICES['shoe']:.2f}")
    similar = page.locator("#similar h4").all_inner_texts()
    assert "Boot" in similar and "Sold out" not in similar  # unavailable items are filtered
    assert page.locator("#bought-together h4").all_inner_texts() == ["Wool sock"]
    shot(page, "item")
    assert page.console_errors == []


def test_the_dashboard_renders_its_tables(site, page):
    server, applier = site
    # the service reads the names the nightly and the evaluation log (log_sample_runs)
    runs = dashboard.mlflow_runs(applier.settings)
    assert sorted(s["step"] for s in runs["nightly"]["steps"]) == ["ingest", "train"]
    assert runs["nightly"]["total_seconds"] == 13.75
    assert runs["evaluation"]["models"]["als"] == {"ndcg@10": 0.3125}
    ended = time.time() - 1.0  # the streaming job's last batch, as its Redis query records it
    applier.writer.write_progress(
        "redis", st.StreamProgress(41, 0.25, ended, rows=17, newest_event_at=ended - 2.5)
    )
    page.goto(f"{server.url}/ui/")
    enter_tokens(page)
    page.goto(f"{server.url}/ui/#dashboard")
    expect(page.locator("#status")).to_contain_text("dashboard read at")
    publication = page.locator("#publication-table").inner_text()
    assert "v7" in publication and "2026-01-01" in publication
    steps = page.locator("#steps-table").inner_text()
    assert "ingest" in steps and "12.2500" in steps and "13.7500" in steps
    metrics = page.locator("#metrics-table").inner_text()
    assert "ndcg@10" in metrics and "0.3125" in metrics and "popular" in metrics
    experiments = page.locator("#experiments-table").inner_text()
    assert "treatment" in experiments and "0.2500 [0.1250, 0.4000]" in experiments
    streaming = page.locator("#streaming-table tr", has_text="redis").inner_text().split("\t")
    assert streaming[:5] == ["redis", "41", "17", "0.2500", "2.5000"]
    assert 1.0 <= float(streaming[5]) < 30  # freshness: seconds since that batch ended
    memory = page.locator("#memory-table").inner_text()
    assert re.search(r"\d\.\d MiB\t\d+\.\d MiB\tno limit\t1", memory), memory
    expect(page.locator("#plots img")).to_have_count(1)
    assert page.locator("#plots img").evaluate("i => i.naturalWidth") > 0
    shot(page, "dashboard")
    assert page.console_errors == []
