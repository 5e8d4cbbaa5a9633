"""The `shop` command as an operator uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, inspect

ROOT = Path(__file__).resolve().parent.parent


def _run(args, env, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "shop.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update({"SHOP_INSTANCE_PATH": str(tmp_path / "instance"), **extra})
    return env


def test_help_lists_commands(tmp_path):
    result = _run(["--help"], _env(tmp_path))
    assert result.returncode == 0, result.stderr
    for command in ("run", "demo", "db", "worker"):
        assert command in result.stdout


def test_db_upgrade_creates_the_schema(tmp_path):
    result = _run(["db", "upgrade"], _env(tmp_path))
    assert result.returncode == 0, result.stderr
    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'shop.sqlite3'}")
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert "orders" in tables
    engine.dispose()
    # On an empty database it says what it made (issue 14), and a second run that it did nothing.
    assert f"Created a new shop database: {len(tables)} tables" in result.stdout
    again = _run(["db", "upgrade"], _env(tmp_path))
    assert "already up to date" in again.stdout and "Created" not in again.stdout


def test_bad_configuration_is_a_clear_error(tmp_path):
    result = _run(["db", "upgrade"], _env(tmp_path, SHOP_CURRENCY="EURO", SHOP_ENV="production"))
    assert result.returncode != 0
    assert "SHOP_CURRENCY" in result.stderr and "SHOP_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_serves_a_shop(tmp_path):
    port = 5600 + os.getpid() % 300
    proc = subprocess.Popen(
        [sys.executable, "-m", "shop.cli", "demo", "--port", str(port)],
        env=_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert "Harbour at Dawn" in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/media/demo-tote-bag.svg") as r:
            assert r.headers["Content-Type"].startswith("image/svg")
        # The demo's e-books deliver: each has its (generated) file, outside the public media.
        assert len(list((tmp_path / "instance" / "downloads").iterdir())) == 2
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "127.0.0.1 -" not in output  # the request log keeps no client address
