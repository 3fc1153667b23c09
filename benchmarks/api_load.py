"""Load benchmark of the blended GET /v1/recommendations under wrk (a script, not a test).

    .venv/bin/python benchmarks/api_load.py [--users 5000] [--workers 1 2] [--duration 10]

Starts a fresh redis-server on a free loopback port, publishes a synthetic set of the
published shape (ALS lists of top_k items per user, catalog, co_view / bought_together /
content neighbours, popular) plus the real-time keys the streaming job writes (recent
events for half the users, affinity, trending), then for each worker count starts the API
(uvicorn, uvloop + httptools) and runs ``wrk -t2 -c32 -d10s --latency`` with a Lua script
that spreads requests over the user ids. Prints req/s, p50 and p99 per worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recolake import publication  # noqa: E402
from recolake.onlinestore import KeyLayout, user_subject  # noqa: E402
from recolake.privacy import pseudonymise  # noqa: E402

KEY = "benchmark-pseudonymisation-key"
NAMESPACE = "bench"
BUCKETS = 64

LUA = """
local n = %(users)d
request = function()
  local path = "/v1/recommendations/u" .. math.random(0, n - 1) .. "?k=10"
  return wrk.format("GET", path)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def publish_synthetic(url: str, users: int, items: int, seed: int = 7) -> None:
    """A publication of the real shape (see recolake/onlinestore/keys.py)."""
    rng = random.Random(seed)
    layout = KeyLayout(NAMESPACE)
    ids = [f"i{n}" for n in range(items)]
    weights = [1.0 / (1 + n) ** 0.8 for n in range(items)]  # long tail
    common = dict(url=url, layout=layout, version="bench", buckets=BUCKETS)

    def ranked(count: int) -> list[tuple[str, float]]:
        chosen = list(dict.fromkeys(rng.choices(ids, weights, k=count * 2)))[:count]
        return [(item, round(1.0 - r / count, 4)) for r, item in enumerate(chosen)]

    user_keys = [pseudonymise(f"u{n}", KEY.encode()) for n in range(users)]
    publication.write_user_lists(((u, ranked(50)) for u in user_keys), **common)
    publication.write_catalog(
        ((i, f"Product {i}", f"cat{n % 40}", n % 50 != 0) for n, i in enumerate(ids)), **common
    )
    publication.write_neighbours(
        (
            (kind, i, ranked(size))
            for kind, size in [("co_view", 20), ("bought_together", 10), ("content", 20)]
            for i in ids
        ),
        **common,
    )
    client = redis.Redis.from_url(url, decode_responses=True)
    publication.go_live(
        client,
        layout=layout,
        version="bench",
        buckets=BUCKETS,
        popular=ranked(200),
        meta={"model_version": "1"},
        grace_seconds=60,
    )
    pipe = client.pipeline(transaction=False)
    now = time.time()
    for user_key in user_keys[::2]:  # half the users browsed just now
        recent = [
            {"item_id": i, "event_type": rng.choice(["view", "view", "add_to_cart"]), "ts": now - n}
            for n, (i, _) in enumerate(ranked(5))
        ]
        pipe.set(layout.recent(user_subject(user_key)), json.dumps(recent))
        cats = {f"cat{rng.randrange(40)}": rng.random() for _ in range(3)}
        pipe.set(
            layout.affinity(user_subject(user_key)),
            json.dumps({"items": {}, "categories": cats}),
        )
    pipe.set(layout.trending, publication.encode_items(ranked(100)))
    pipe.execute()
    client.close()


def run_wrk(base: str, users: int, duration: int, script: Path) -> dict[str, str]:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", "-s", str(script), base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "req/s": rps.group(1) if rps else "?",
        "p50": p50.group(1) if p50 else "?",
        "p99": p99.group(1) if p99 else "?",
        "non-2xx": errors.group(1) if errors else "0",
        "raw": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--verbose", action="store_true", help="print wrk's whole output")
    args = parser.parse_args()
    for tool in ("redis-server", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian package)")

    with tempfile.TemporaryDirectory(prefix="recolake-bench-") as tmp:
        redis_port = free_port()
        redis_proc = subprocess.Popen(
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
            stdout=subprocess.DEVNULL,
        )
        try:
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            for _ in range(100):
                try:
                    redis.Redis.from_url(redis_url).ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            started = time.monotonic()
            publish_synthetic(redis_url, args.users, args.items)
            print(
                f"published {args.users} users, {args.items} items (3 neighbour kinds), "
                f"recent events for {args.users // 2} users in {time.monotonic() - started:.1f}s",
                flush=True,
            )
            script = Path(tmp) / "users.lua"
            script.write_text(LUA % {"users": args.users})
            env = {
                **os.environ,
                "RECOLAKE_REDIS_URL": redis_url,
                "RECOLAKE_REDIS_NAMESPACE": NAMESPACE,
                "RECOLAKE_REDIS_BUCKETS": str(BUCKETS),
                "RECOLAKE_PSEUDONYMISATION_KEY": KEY,
            }
            for workers in args.workers:
                port = free_port()
                api = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "online.app:create_app",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--workers",
                        str(workers),
                        "--loop",
                        "uvloop",
                        "--http",
                        "httptools",
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    cwd=ROOT,
                    env=env,
                )
                try:
                    base = f"http://127.0.0.1:{port}"
                    wait_http(f"{base}/healthz")
                    sample = httpx.get(f"{base}/v1/recommendations/u0?k=10").json()
                    assert sample["items"] and sample["recent"], sample
                    run_wrk(base, args.users, 2, script)  # warm-up (caches, connections)
                    result = run_wrk(base, args.users, args.duration, script)
                    if args.verbose:
                        print(result["raw"])
                    print(
                        f"workers={workers}: {result['req/s']} req/s, p50 {result['p50']}, "
                        f"p99 {result['p99']}, non-2xx {result['non-2xx']} "
                        f"(wrk -t2 -c32 -d{args.duration}s, {args.users} users)",
                        flush=True,
                    )
                finally:
                    api.terminate()
                    api.wait(timeout=15)
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
