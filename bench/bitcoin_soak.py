"""Soak: thousands of random chain histories against the watcher (tests/bitcoin/test_chain_property.py).

    python bench/bitcoin_soak.py [--sequences 5000] [--seed 1] [--postgres URL]

CI runs 200 sequences on each database; this runs as many as asked, from a seed other than
CI's, on SQLite and on PostgreSQL (SHOP_TEST_POSTGRES_URL or --postgres), and prints the seed
and the replay command of any failure (pytest's own output).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=5000, help="per database")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--postgres", default=os.environ.get("SHOP_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    env = {
        **os.environ,
        "SHOP_BITCOIN_PROPERTY_SEQUENCES": str(args.sequences),
        "SHOP_BITCOIN_PROPERTY_SEED": str(args.seed),
    }
    if args.postgres:
        env["SHOP_TEST_POSTGRES_URL"] = args.postgres
    print(f"seed {args.seed}, {args.sequences} sequences per database", flush=True)
    started = time.monotonic()
    code = subprocess.call(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/bitcoin/test_chain_property.py",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
    )
    print(f"{time.monotonic() - started:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
