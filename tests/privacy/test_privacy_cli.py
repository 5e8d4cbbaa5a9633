"""`shop privacy ...` as an operator runs it: a real process, settings from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args, env):
    return subprocess.run(
        [sys.executable, "-m", "shop.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_operator_commands(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env["SHOP_INSTANCE_PATH"] = str(tmp_path / "instance")
    assert _run(["db", "upgrade"], env).returncode == 0
    result = _run(["privacy", "purge", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    assert "would erase personal data of 0 order(s)" in result.stdout
    assert (tmp_path / "instance" / "data_key").exists()  # generated outside production
    key = _run(["privacy", "generate-key"], {**env, "SHOP_ENV": "production"}).stdout.strip()
    assert len(key) == 44
    prod = _run(["privacy", "purge"], {**env, "SHOP_ENV": "production"})
    assert prod.returncode != 0 and "SHOP_DATA_KEY is required" in prod.stderr
    assert "Traceback" not in prod.stderr
    export = _run(["privacy", "ledger-export", "--from", "2026-01-01", "--to", "2026-12-31"], env)
    assert export.returncode == 0 and export.stdout.startswith("entry_date,kind,order_number")
