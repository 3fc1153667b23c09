"""Redis memory per user of a publication: N synthetic users x K items, as publish writes them.

    .venv/bin/python benchmarks/redis_memory_per_user.py [--users 200000] [--items 50]

Starts a private redis-server on a free port (nothing else in it), writes with the real
writer (recolake.onlinestore.batch.BatchWriter.write_user_lists), prints used_memory delta / user.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import tempfile
import time

import redis

from recolake.onlinestore import KeyLayout
from recolake.onlinestore.batch import BatchWriter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--buckets", type=int, default=1024)
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
        before = client.info("memory")["used_memory"]
        rng = random.Random(7)
        catalog = [f"{rng.randrange(10**5, 10**6)}" for _ in range(4000)]  # retail-like ids
        users = (
            (
                f"{rng.getrandbits(64):016x}",
                [(rng.choice(catalog), rng.random() * 3) for _ in range(args.items)],
            )
            for _ in range(args.users)
        )
        started = time.perf_counter()
        BatchWriter(
            url=url, layout=KeyLayout("bench"), version="v1", buckets=args.buckets
        ).write_user_lists(users)
        seconds = time.perf_counter() - started
        after = client.info("memory")["used_memory"]
        per_user = (after - before) / args.users
        sample_key = KeyLayout("bench").recs("v1", 0)
        print(f"users={args.users} items/user={args.items} buckets={args.buckets}")
        print(f"used_memory delta: {(after - before) / 2**20:.1f} MiB, {per_user:.0f} B/user")
        print(
            f"MEMORY USAGE of one bucket hash: {client.memory_usage(sample_key)} B, "
            f"{client.hlen(sample_key)} users in it"
        )
        print(f"write time: {seconds:.1f} s ({args.users / seconds:.0f} users/s, one writer)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
