"""The documented gunicorn command, run for real: its access log holds no order token."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "Zq3xY7wVbN2mK8pL4tR6sD1fG9hJ0cXeA5uI-oP_kQw"


def _dockerfile_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*?\])\s*$", text.replace("\\\n", ""), re.M | re.S).group(1)
    return json.loads(cmd)


def _documented_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("gunicorn "))
    deploy = (ROOT / "docs/DEPLOY.md").read_text().replace("\\\n", " ")
    exec_start = re.search(r"^ExecStart=\S*/(gunicorn .*)$", deploy, re.M).group(1)
    return [shlex.split(line.split("#")[0]), shlex.split(exec_start), _dockerfile_command()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str], tmp_path: Path) -> str:
    port = _free_port()
    args = [a for a in command[1:]]
    # Our own address, one worker: the rest of the documented command is kept as it is.
    for flag in ("--bind", "-b"):
        if flag in args:
            args[args.index(flag) + 1] = f"127.0.0.1:{port}"
    args = [a for a in args if not a.startswith("0.0.0.0")]
    env = {
        **os.environ,
        "GUNICORN_CMD_ARGS": f"--workers 1 --bind 127.0.0.1:{port}",
        "SHOP_INSTANCE_PATH": str(tmp_path / "instance"),
        "SHOP_DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
    }
    env.pop("SHOP_ENV", None)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([gunicorn, *args], cwd=ROOT, env=env, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/orders/{TOKEN}?email=a@b.example", timeout=5
                    )
                except urllib.error.HTTPError:
                    break  # 404 or 500: either way the request was served and logged
                except OSError:
                    assert proc.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.3)
                    continue
                break
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return log.read_text()


def test_documented_gunicorn_commands_log_no_token(tmp_path):
    commands = _documented_commands()
    assert len(commands) == 3
    for i, command in enumerate(commands):
        out = _run(command, tmp_path / str(i))
        assert "/orders/<tok:" in out, out  # the request was logged ...
        assert TOKEN not in out and "a@b.example" not in out and "127.0.0.1 " not in out, out
