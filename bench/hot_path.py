"""The cached storefront pages in-process, for comparing commits on a busy machine.

    python bench/hot_path.py [--code DIR] [--requests 300] [--batches 7]

Seeds a scratch PostgreSQL database with the demo catalog (bench/scratch.py of DIR), then
requests the catalog page and the product page through the Flask test client in batches,
alternating the two. Prints per page the best mean over the batches of wall time and of this
process's CPU time (time.process_time: what other processes on the machine do adds to wall
time but hardly to it). ``--code DIR`` runs the shop of another checkout, e.g. a worktree of an
older commit, with that checkout's own scratch.py. Whole checkouts: bench/checkout_steps.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batches", type=int, default=7)
    args = parser.parse_args()
    code = os.path.abspath(args.code)
    sys.path[:0] = [code, os.path.join(code, "bench")]

    from scratch import SLUG, scratch_shop

    from shop import create_app

    pages = {"catalog page": "/", "product page": f"/products/{SLUG}"}
    with scratch_shop() as (_url, env):
        app = create_app(environ=env)
        try:
            client = app.test_client()
            for path in pages.values():  # warm-up: the cache, the pool, the templates
                for _ in range(50):
                    assert client.get(path).status_code == 200
            best = {label: [float("inf"), float("inf")] for label in pages}
            for _ in range(args.batches):
                for label, path in pages.items():
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(args.requests):
                        client.get(path)
                    wall = (time.perf_counter() - wall) / args.requests
                    cpu = (time.process_time() - cpu) / args.requests
                    best[label] = [min(best[label][0], wall), min(best[label][1], cpu)]
        finally:
            app.extensions["shop.db"].dispose()
    print(f"code {code}: best mean of {args.batches} batches of {args.requests} requests")
    for label, (wall, cpu) in best.items():
        print(f"  {label:14s} wall {wall * 1e6:7.0f} µs  cpu {cpu * 1e6:7.0f} µs")


if __name__ == "__main__":
    main()
