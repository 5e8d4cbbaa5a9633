"""Request-scoped access to settings, the database session and payment methods."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, g, request
from sqlalchemy.orm import Session

from shop import budget
from shop.config import Settings
from shop.db import Database

if TYPE_CHECKING:
    # Only the annotation: the helpers here sit below every feature, payments included.
    from shop.payments.base import PaymentMethod


def settings() -> Settings:
    return current_app.extensions["shop.settings"]


def database() -> Database:
    return current_app.extensions["shop.db"]


def payment_methods() -> dict[str, PaymentMethod]:
    return current_app.extensions["shop.payment_methods"]


def db_session() -> Session:
    """The request's unit of work; committed once after the view, rolled back on any error."""
    if "db_session" not in g:
        db = database()
        # Pages shown on GET only read: they need not queue behind SQLite's write lock.
        deferred = request.method in ("GET", "HEAD") or g.get("db_deferred", False)
        g.db_session = db.sessionmaker() if deferred else db.sessionmaker(bind=db.writer)
    return g.db_session


def defer_write_lock() -> None:
    """For a request that mostly reads and then does slow work (a password check): on SQLite its
    transaction does not take the write lock up front. Call at the start of the view: a session
    that only read so far (the signed-in user, in before_request) starts over deferred."""
    g.db_deferred = True
    session = g.get("db_session")
    db = database()
    if (
        session is not None
        and session.bind is db.writer
        and not (session.new or session.dirty or session.deleted)
    ):
        session.rollback()
        session.bind = db.engine


def commit_request_session(response):
    session = g.pop("db_session", None)
    if session is None:
        return response
    try:
        if response.status_code < 400:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
    return response


def discard_request_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()


def open_call_budget() -> None:
    """Every outgoing call this request makes shares one time budget (shop.budget)."""
    g.call_budget = budget.start(settings().request_budget_seconds)


def close_call_budget(_exc: BaseException | None = None) -> None:
    token = g.pop("call_budget", None)
    if token is not None:
        budget.end(token)
