"""Sign-in throttling kept in the database, so every worker and every server counts together.

Failures are counted per account (user name), per client and for the whole shop. The client is
stored only as a keyed hash of its address under a key that changes every day (the shop's secret
key and the date), so the table holds no IP address and, after the day, nothing that links
back to one; rows older than a day are deleted. A throttled attempt is still checked: an account
with two-factor authentication signs in with the right password and a valid code whatever the
throttle says, so guessing cannot lock the owner out; an account without it waits.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from shop.admin.models import SigninFailure


@dataclass(frozen=True)
class Policy:
    free_attempts: int = 5
    base_lock: timedelta = timedelta(seconds=30)
    max_lock: timedelta = timedelta(hours=1)
    forget_after: timedelta = timedelta(days=1)
    global_limit: int = 100
    global_window: timedelta = timedelta(minutes=10)
    # Wrong second-factor codes per account in `forget_after` before only recovery codes (80
    # random bits each) are accepted: a six-digit code cannot be guessed at request speed.
    code_limit: int = 10


POLICY = Policy()


def user_key(username: str) -> str:
    return "user:" + (username or "").strip().lower()[:64]


def code_key(username: str) -> str:
    return "code:" + (username or "").strip().lower()[:64]


def client_key(secret: str, address: str | None, now: datetime) -> str:
    day_key = hashlib.sha256(f"{secret}\x00signin\x00{now.date().isoformat()}".encode()).digest()
    tag = hmac.new(day_key, (address or "-").encode(), hashlib.sha256).hexdigest()[:16]
    return "client:" + tag


def _lock_for(count: int, policy: Policy) -> timedelta:
    if count < policy.free_attempts:
        return timedelta(0)
    return min(policy.base_lock * 2 ** (count - policy.free_attempts), policy.max_lock)


def wait_seconds(
    session: Session, keys: list[str], now: datetime, policy: Policy = POLICY
) -> float:
    """0 when an attempt is not throttled, else how long the client should wait."""
    since = now - policy.forget_after
    rows = session.execute(
        select(SigninFailure.key, func.count(), func.max(SigninFailure.at))
        .where(SigninFailure.key.in_(keys), SigninFailure.at > since)
        .group_by(SigninFailure.key)
    ).all()
    wait = timedelta(0)
    for _key, count, last in rows:
        wait = max(wait, last + _lock_for(count, policy) - now)
    recent = session.execute(
        select(func.count())
        .select_from(SigninFailure)
        .where(SigninFailure.key.startswith("user:"), SigninFailure.at > now - policy.global_window)
    ).scalar_one()
    if recent >= policy.global_limit:
        first = session.execute(
            select(func.min(SigninFailure.at)).where(
                SigninFailure.key.startswith("user:"), SigninFailure.at > now - policy.global_window
            )
        ).scalar_one()
        wait = max(wait, first + policy.global_window - now)
    return max(0.0, wait.total_seconds())


def failures(session: Session, key: str, now: datetime, policy: Policy = POLICY) -> int:
    return session.execute(
        select(func.count())
        .select_from(SigninFailure)
        .where(SigninFailure.key == key, SigninFailure.at > now - policy.forget_after)
    ).scalar_one()


def record_failure(
    session: Session, keys: list[str], now: datetime, policy: Policy = POLICY
) -> None:
    """Count a failed attempt (the caller commits it even though the request fails)."""
    session.execute(delete(SigninFailure).where(SigninFailure.at <= now - policy.forget_after))
    session.add_all(SigninFailure(key=key, at=now) for key in keys)
    session.flush()


def clear(session: Session, keys: list[str]) -> None:
    session.execute(delete(SigninFailure).where(SigninFailure.key.in_(keys)))
