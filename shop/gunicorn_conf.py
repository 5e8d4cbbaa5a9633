"""gunicorn settings for the shop's web app: ``gunicorn -c python:shop.gunicorn_conf 'shop:create_app()'``.

Threaded workers: a request waiting on a slow payment provider holds one thread, not a whole
process, so other pages keep being served; gthread's master checks the worker's own loop, not
the request, so one hanging call does not get the worker killed either. The time budget for
outgoing calls (SHOP_REQUEST_BUDGET_SECONDS) must end well before `timeout`, which is checked
here at start-up: a shop that could still be waiting on Stripe when gunicorn gives up on the
request refuses to start.

The access log keeps the time, method, path with order/download tokens replaced by a short
tag (``/orders/<tok:3f9a>``), protocol, status, size and duration: no client address, user
agent, referer or query string.

Options given on the command line or in ``GUNICORN_CMD_ARGS`` (e.g. ``--workers 4``,
``--bind``) win over these; the budget check sees the final values.
"""

from __future__ import annotations

from shop.config import load_settings
from shop.privacy.logging import access_log_format as _format

bind = "127.0.0.1:8000"
worker_class = "gthread"
# Per worker process; one hanging call takes one of them for at most the request budget.
threads = 8
timeout = 30
graceful_timeout = 30
accesslog = "-"
access_log_format = _format
logger_class = "shop.privacy.gunicorn.PrivateLogger"

# What the budget must leave before the server's timeout: the page itself, the database.
MARGIN_SECONDS = 5.0


def check_budget(budget_seconds: float, server_timeout: float) -> str | None:
    """The problem with these two numbers, or None."""
    if server_timeout and budget_seconds + MARGIN_SECONDS > server_timeout:
        return (
            f"SHOP_REQUEST_BUDGET_SECONDS ({budget_seconds:g}) must be at least "
            f"{MARGIN_SECONDS:g} s below gunicorn's --timeout ({server_timeout:g}): a request "
            "still waiting on a payment provider would be killed with a bare error"
        )
    return None


def on_starting(server) -> None:
    problem = check_budget(load_settings().request_budget_seconds, server.cfg.timeout)
    if problem:
        server.log.error(problem)
        raise SystemExit(problem)
