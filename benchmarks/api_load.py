"""Load benchmark of the blended GET /v1/recommendations against the trivial /healthz of the
same server, in the same run, under wrk (a script, not a test).

    .venv/bin/python benchmarks/api_load.py [--users 5000] [--workers 1 2] [--duration 10]

Starts a fresh redis-server on a free loopback port, publishes a synthetic set of the
published shape (ALS lists of top_k items per user, catalog, co_view / bought_together /
content neighbours, popular) plus the real-time keys the streaming job writes (recent
events for half the users, affinity, trending), then for each worker count starts the API
(uvicorn, uvloop + httptools) and runs ``wrk -t2 -c32 -d10s --latency`` with a Lua script
that spreads requests over the user ids, and the same wrk run against ``/healthz`` (one Redis
PING): prints req/s, p50 and p99 of both per worker count and the ratios (blended / trivial
throughput, blended / trivial p99), which move much less than absolute figures on a shared
machine. User lists are published in the compact form the publish job writes (codec 2).
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

from recolake.onlinestore import KeyLayout, user_subject  # noqa: E402
from recolake.onlinestore.batch import BatchWriter  # noqa: E402
from recolake.onlinestore.codecs import encode_items, index_width  # noqa: E402
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
    """A publication of the real shape (see recolake/onlinestore/keys.py), user lists in the
    compact codec the publish job writes."""
    rng = random.Random(seed)
    layout = KeyLayout(NAMESPACE)
    ids = [f"i{n}" for n in range(items)]
    position = {item: n for n, item in enumerate(ids)}
    weights = [1.0 / (1 + n) ** 0.8 for n in range(items)]  # long tail
    writer = BatchWriter(url=url, layout=layout, version="bench", buckets=BUCKETS)

    def ranked(count: int) -> list[tuple[str, float]]:
        chosen = list(dict.fromkeys(rng.choices(ids, weights, k=count * 2)))[:count]
        return [(item, round(1.0 - r / count, 4)) for r, item in enumerate(chosen)]

    user_keys = [pseudonymise(f"u{n}", KEY.encode()) for n in range(users)]
    blocks = writer.write_item_index(ids)
    width = index_width(len(ids))

    def compact(user_key: str) -> tuple[str, list[int], list[float]]:
        pairs = ranked(50)
        return user_key, [position[i] for i, _ in pairs], [score for _, score in pairs]

    writer.write_user_positions((compact(u) for u in user_keys), width)
    writer.write_catalog(
        (i, f"Product {i}", f"cat{n % 40}", n % 50 != 0) for n, i in enumerate(ids)
    )
    writer.write_neighbours(
        (kind, i, ranked(size))
        for kind, size in [("co_view", 20), ("bought_together", 10), ("content", 20)]
        for i in ids
    )
    writer.go_live(
        popular=ranked(200),
        meta={"model_version": "1"},
        grace_seconds=60,
        index_blocks=blocks,
        index_width=width,
    )
    client = redis.Redis.from_url(url, decode_responses=True)
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
    pipe.set(layout.trending, encode_items(ranked(100)))
    pipe.execute()
    client.close()


def run_wrk(base: str, users: int, duration: int, script: Path | None) -> dict[str, str]:
    """wrk with the users script (the blended GET), or plain against ``base`` (a path)."""
    extra = ["-s", str(script)] if script else []
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", *extra, base],
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


def seconds(value: str) -> float:
    """wrk's latency figures (``850.00us``, ``12.30ms``, ``1.20s``) in seconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise ValueError(value)
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(2)]
    return float(match.group(1)) * unit


def ratio(a: str, b: str) -> str:
    try:
        x, y = (float(a), float(b)) if a[-1].isdigit() else (seconds(a), seconds(b))
    except ValueError:
        return "?"
    return f"{x / y:.2f}"


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
                    assert sample["items"][0]["source"] in {
                        "als",
                        "co_view",
                        "bought_together",
                        "content",
                    }, sample
                    assert sample["items"] and sample["recent"], sample
                    run_wrk(base, args.users, 2, script)  # warm-up (caches, connections)
                    trivial = run_wrk(f"{base}/healthz", args.users, args.duration, None)
                    result = run_wrk(base, args.users, args.duration, script)
                    if args.verbose:
                        print(trivial["raw"], result["raw"])
                    for name, r in (("healthz", trivial), ("blended", result)):
                        print(
                            f"workers={workers} {name}: {r['req/s']} req/s, p50 {r['p50']}, "
                            f"p99 {r['p99']}, non-2xx {r['non-2xx']} "
                            f"(wrk -t2 -c32 -d{args.duration}s, {args.users} users)",
                            flush=True,
                        )
                    print(
                        f"workers={workers} blended/healthz: throughput "
                        f"{ratio(result['req/s'], trivial['req/s'])}x, p99 "
                        f"{ratio(result['p99'], trivial['p99'])}x",
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
