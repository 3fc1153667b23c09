"""Freshness: from POST /v1/events returning to the event's item showing in the user's
`recent` list AND the recommendations changing (a script, not a test).

    .venv/bin/python benchmarks/freshness.py --api http://127.0.0.1:8000 --token "$TOKEN" \\
        [--events 50] [--timeout 10]
    .venv/bin/python benchmarks/freshness.py --start     # everything in a temp dir

Needs a running API with a publication live and the streaming job running against the same
event log and Redis (`make demo` starts all of them; see scripts/demo.sh). With ``--start``
it starts its own: a redis-server on a free port with the synthetic publication of
benchmarks/api_load.py, the streaming job (`python -m pipelines.streaming`, landing dir,
checkpoint and lake in a temp dir) and the API, waits for the first event to come through
(Spark start-up), measures, and stops them. For each of
``--events`` fresh users (ids never seen, so their recent list starts empty) it posts one
view of an item that has neighbours, then polls GET /v1/recommendations/{user} every
``--poll`` seconds until the item is in `recent` and the item list differs from the one
before the post. Prints p50 / p95 / max over the events, and how many never became fresh.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def items_with_neighbours(client: httpx.Client, count: int) -> list[str]:
    """Popular items that have similar items published (their view must change the recs)."""
    body = client.get("/v1/recommendations", params={"session_id": "freshness-probe", "k": 100})
    body.raise_for_status()
    found = []
    for entry in body.json()["items"]:
        similar = client.get(f"/v1/items/{entry['item_id']}/similar", params={"k": 5})
        if similar.status_code == 200 and similar.json()["items"]:
            found.append(entry["item_id"])
            if len(found) == count:
                break
    if not found:
        raise SystemExit("no published item has neighbours: run the nightly with item_cf/content")
    return found


def measure_one(
    client: httpx.Client, headers: dict, item: str, timeout: float, poll: float
) -> float | None:
    user = f"fresh-{uuid.uuid4().hex[:12]}"
    before = [i["item_id"] for i in client.get(f"/v1/recommendations/{user}").json()["items"]]
    event = {
        "event_id": uuid.uuid4().hex,
        "user_id": user,
        "item_id": item,
        "event_type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
        "session_id": f"s-{user}",
    }
    response = client.post("/v1/events", json=event, headers=headers)
    posted = time.perf_counter()
    if response.status_code // 100 != 2:
        raise SystemExit(f"POST /v1/events answered {response.status_code}: {response.text}")
    while time.perf_counter() - posted < timeout:
        body = client.get(f"/v1/recommendations/{user}").json()
        if item in body["recent"] and [i["item_id"] for i in body["items"]] != before:
            return time.perf_counter() - posted
        time.sleep(poll)
    return None


def start_stack(stack: ExitStack, tmp: str) -> tuple[str, str]:
    """redis-server + synthetic publication + streaming job + API; returns (url, token)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import api_load

    def spawn(cmd: list[str], log: str, env: dict | None = None) -> None:
        out = open(Path(tmp) / log, "w")  # noqa: SIM115 (closed by the stack)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        stack.callback(out.close)
        stack.callback(proc.wait, 30)
        stack.callback(proc.terminate)

    redis_port, api_port = api_load.free_port(), api_load.free_port()
    spawn(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
        ],
        "redis.log",
    )
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    time.sleep(0.5)
    api_load.publish_synthetic(redis_url, 5000, 4000)
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        "RECOLAKE_REDIS_URL": redis_url,
        "RECOLAKE_REDIS_NAMESPACE": api_load.NAMESPACE,
        "RECOLAKE_REDIS_BUCKETS": str(api_load.BUCKETS),
        "RECOLAKE_PSEUDONYMISATION_KEY": api_load.KEY,
        "RECOLAKE_API_TOKEN": token,
        "RECOLAKE_LANDING_DIR": f"{tmp}/landing",
        "RECOLAKE_STREAM_CHECKPOINT_DIR": f"{tmp}/checkpoint",
        "RECOLAKE_LAKE_ROOT": f"{tmp}/lake",
    }
    Path(tmp, "landing").mkdir()
    spawn([sys.executable, "-m", "pipelines.streaming"], "streaming.log", env)
    spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "online.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ],
        "api.log",
        env,
    )
    url = f"http://127.0.0.1:{api_port}"
    api_load.wait_http(f"{url}/healthz")
    print(f"started redis, streaming job and API (logs in {tmp})", flush=True)
    return url, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--token", help="RECOLAKE_API_TOKEN of the API")
    parser.add_argument("--start", action="store_true", help="start a private stack (see above)")
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.02)
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.start:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="recolake-fresh-"))
            args.api, args.token = start_stack(stack, tmp)
        elif not args.token:
            parser.error("--token is required unless --start")
        measure(args)
        if args.start:
            print_batch_times(Path(tmp) / "streaming.log")


def print_batch_times(log: Path) -> None:
    """The streaming job's own processing time per Redis micro-batch (from its log): how much
    of the freshness is Spark's batch, the rest being trigger wait, planning and polling."""
    pattern = re.compile(r"redis batch \d+: (\d+) subject-event\(s\), \d+ new, .* in ([0-9.]+)s")
    times = [float(m[2]) for m in pattern.finditer(log.read_text()) if int(m[1]) > 0]
    if times:
        print(
            f"streaming job, {len(times)} Redis batches with events: processing p50 "
            f"{percentile(times, 0.5):.3f}s, p95 {percentile(times, 0.95):.3f}s",
            flush=True,
        )


def measure(args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {args.token}"}
    with httpx.Client(base_url=args.api, timeout=5) as client:
        items = items_with_neighbours(client, 10)
        if args.start:  # the streaming job's first micro-batch waits for Spark to start
            warm = measure_one(client, headers, items[0], 180.0, 0.2)
            print(f"first event through after {warm}s (start-up, not counted)", flush=True)
        delays, stale = [], 0
        for n in range(args.events):
            delay = measure_one(client, headers, items[n % len(items)], args.timeout, args.poll)
            if delay is None:
                stale += 1
            else:
                delays.append(delay)
    if not delays:
        raise SystemExit(f"no event became fresh within {args.timeout}s ({stale} events)")
    print(
        f"freshness over {len(delays)} events: p50 {percentile(delays, 0.5):.3f}s, "
        f"p95 {percentile(delays, 0.95):.3f}s, max {max(delays):.3f}s, "
        f"mean {statistics.mean(delays):.3f}s; not fresh within {args.timeout}s: {stale}",
        flush=True,
    )


if __name__ == "__main__":
    main()
