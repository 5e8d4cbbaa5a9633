"""A total time budget for the outgoing calls one web request makes while the customer waits.

A per-call timeout is not enough: an SDK that retries twice after a 10 s timeout keeps a request
30 s, past the web server's worker timeout. The web layer opens a budget per request
(`shop.web.security`); clients such as the Stripe gateway shrink each call's timeout to what is
left and stop retrying when it is gone. Outside a request (the worker) there is no budget.
Pure: no Flask.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("shop_call_deadline", default=None)


def remaining() -> float | None:
    """Seconds left for outgoing calls in this context, or None when no budget applies."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def start(seconds: float) -> object:
    """Open a budget of `seconds` from now; returns a token for `end`."""
    return _deadline.set(time.monotonic() + seconds)


def end(token) -> None:
    try:
        _deadline.reset(token)
    except ValueError:  # ended from another context (a server that switched threads)
        _deadline.set(None)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    token = start(seconds)
    try:
        yield
    finally:
        end(token)
