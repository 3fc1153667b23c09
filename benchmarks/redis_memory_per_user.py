"""Redis memory per user of a publication: N synthetic users x K items, as publish writes them.

    .venv/bin/python benchmarks/redis_memory_per_user.py [--users 200000] [--items 50]

Starts a private redis-server on a free port (nothing else in it), writes the same users with
the real writer in both codecs — JSON lists (codec 1, ``BatchWriter.write_user_lists``) and
the compact lists the publish job writes (codec 2, ``write_user_positions`` + the item
index) — and prints the used_memory delta per user of each, and the read-back check.
User keys are real pseudonymised keys (64 hex characters, as silver makes them).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import socket
import subprocess
import tempfile
import time

import redis

from recolake.onlinestore import KeyLayout
from recolake.onlinestore.batch import BatchWriter
from recolake.onlinestore.codecs import decode_ranked_positions, index_width


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--buckets", type=int, default=1024)
    parser.add_argument(
        "--catalog", type=int, default=4000, help="items (past 65,536 positions take 3 bytes)"
    )
    args = parser.parse_args()
    port = free_port()
    tmp = tempfile.mkdtemp()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        rng = random.Random(7)
        catalog = [f"{n:06d}{rng.randrange(10**3)}" for n in range(args.catalog)]  # retail-like
        position = {item: n for n, item in enumerate(catalog)}
        lists = [
            (
                hashlib.sha256(f"user-{n}".encode()).hexdigest(),
                [
                    (catalog[rng.randrange(len(catalog))], rng.random() * 3)
                    for _ in range(args.items)
                ],
            )
            for n in range(args.users)
        ]
        for lst in lists:
            lst[1].sort(key=lambda pair: -pair[1])
        layout = KeyLayout("bench")
        print(f"users={args.users} items/user={args.items} buckets={args.buckets}")
        results = {}
        for codec in ("1", "2"):
            client.flushall()
            before = client.info("memory")["used_memory"]
            writer = BatchWriter(url=url, layout=layout, version="v1", buckets=args.buckets)
            started = time.perf_counter()
            if codec == "1":
                writer.write_user_lists(lists)
            else:
                writer.write_item_index(catalog)
                index_bytes = client.info("memory")["used_memory"] - before
                before += index_bytes  # per publication, not per user: reported on its own
                writer.write_user_positions(
                    (
                        (user, [position[i] for i, _ in items], [s for _, s in items])
                        for user, items in lists
                    ),
                    index_width(len(catalog)),
                )
            seconds = time.perf_counter() - started
            after = client.info("memory")["used_memory"]
            per_user = (after - before) / args.users
            results[codec] = per_user
            user, items = lists[0]
            stored = client.hget(layout.recs("v1", layout.bucket_of(user, args.buckets)), user)
            if codec == "2":
                got = [catalog[p] for p, _ in decode_ranked_positions(stored)]
                assert got == [i for i, _ in items], "compact list does not read back"
            print(
                f"codec {codec}: used_memory delta {(after - before) / 2**20:.1f} MiB, "
                f"{per_user:.0f} B/user, value {len(stored)} B, write {seconds:.1f} s "
                f"({args.users / seconds:.0f} users/s, one writer)",
                flush=True,
            )
        print(
            f"compact item index (once per publication): {index_bytes / 2**20:.1f} MiB for "
            f"{len(catalog)} items"
        )
        print(f"compact / JSON: {results['2'] / results['1']:.2f}x memory per user")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
