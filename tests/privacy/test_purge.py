"""Scheduled erasure: what goes when, what is kept while needed, and the worker's daily run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shop.jobs.worker import run_once
from shop.orders import service
from shop.orders.models import Order, OrderContact, OrderEvent
from shop.privacy import ledger
from shop.privacy import purge as purge_mod
from shop.privacy.keys import session_settings
from shop.privacy.purge import daily_purge, purge, register_eraser, register_hold
from shop.privacy.store import read_contact
from tests.conftest import make_test_app
from tests.privacy.helpers import pay, place, refund

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)


def _due(database, as_of) -> set[str]:
    with database.job_session() as s:
        report = purge(s, session_settings(s), as_of=as_of, dry_run=True)
        s.rollback()
    return {o.number for o in report.orders}


def _scenario(database):
    """One order in every situation; returns their numbers by name."""
    n = {}
    with database.job_session() as s:
        pending = place(s, now=T0 + 300 * D)  # placed later, still awaiting payment
        n["pending"] = pending.number
        expired = place(s, now=T0)
        n["expired"] = expired.number
        cancelled = place(s, now=T0)
        service.cancel(s, cancelled, now=T0 + H)
        n["cancelled"] = cancelled.number
        paid = place(s, now=T0)
        pay(s, paid, now=T0)
        n["paid"] = paid.number
        fulfilled = place(s, now=T0)
        pay(s, fulfilled, now=T0)
        service.fulfil(s, fulfilled, now=T0 + 2 * D)
        n["fulfilled"] = fulfilled.number
        closed = place(s, now=T0)
        pay(s, closed, now=T0)
        service.fulfil(s, closed, now=T0 + 2 * D)
        service.close(s, closed, now=T0 + 5 * D)
        n["closed"] = closed.number
        disputed = place(s, now=T0)
        pay(s, disputed, now=T0)
        service.fulfil(s, disputed, now=T0 + 2 * D)
        disputed.attention = "Card dispute opened"
        n["disputed"] = disputed.number
        part = place(s, now=T0)  # partly refunded, not yet shipped
        pay(s, part, now=T0)
        refund(s, part, 100, now=T0 + D, key="part")
        n["part_refund_open"] = part.number
        returned = place(s, now=T0)  # shipped, then partly refunded on a return
        pay(s, returned, now=T0)
        service.fulfil(s, returned, now=T0 + 2 * D)
        refund(s, returned, 100, now=T0 + 10 * D, key="ret")
        n["returned"] = returned.number
        full = place(s, now=T0)
        pay(s, full, now=T0)
        refund(s, full, full.total, now=T0 + 3 * D, key="full")
        n["refunded"] = full.number
        service.expire_due_orders(s, now=T0 + 31 * 60 * (H / 3600))
    return n


def test_windows_per_status(demo_catalog, database):
    n = _scenario(database)
    expired_at = T0 + timedelta(minutes=31)
    assert _due(database, expired_at + 23 * H) == set()
    assert _due(database, expired_at + 25 * H) == {n["expired"], n["cancelled"]}
    # Fulfilled 2 days in, so the 30-day return window ends at day 32; the refunded one at
    # day 33 (refund + 30), the returned one at day 40 (its refund restarted the window).
    assert _due(database, T0 + 31 * D) == {n["expired"], n["cancelled"]}
    assert _due(database, T0 + 32 * D + H) == {
        n["expired"],
        n["cancelled"],
        n["fulfilled"],
        n["closed"],
    }
    assert _due(database, T0 + 40 * D + H) == {
        n["expired"],
        n["cancelled"],
        n["fulfilled"],
        n["closed"],
        n["refunded"],
        n["returned"],
    }
    # Still needed however long it takes: unpaid-but-open, paid-not-sent, disputes.
    later = _due(database, T0 + 3650 * D)
    assert {n["pending"], n["paid"], n["disputed"], n["part_refund_open"]} & later == set()


def test_purge_erases_stamps_and_keeps_the_ledger(demo_catalog, database):
    n = _scenario(database)
    with database.job_session() as s:
        before = ledger.totals(s)
    as_of = T0 + 41 * D
    with database.job_session() as s:
        dry = purge(s, session_settings(s), as_of=as_of, dry_run=True)
        s.rollback()
    with database.job_session() as s:
        assert s.scalar(select(Order).where(Order.personal_data_erased_at.is_not(None))) is None
        report = purge(s, session_settings(s), as_of=as_of, now=as_of)
    assert [o.number for o in report.orders] == [o.number for o in dry.orders]
    assert report.erased_rows["order-contacts"] == 6
    with database.job_session() as s:
        for order in s.scalars(select(Order)):
            erased = order.number in {o.number for o in report.orders}
            assert (order.personal_data_erased_at == as_of) is erased
            assert (read_contact(s, order) is None) is erased
            assert (s.get(OrderContact, order.id) is None) is erased
            if erased:
                assert order.events[-1].note == "Personal data erased"
        assert ledger.totals(s) == before
        # Nothing left to do: a second run erases nothing and notes nothing.
        events = s.scalar(select(OrderEvent.id).order_by(OrderEvent.id.desc()).limit(1))
        assert purge(s, session_settings(s), as_of=as_of).orders == []
        assert s.scalar(select(OrderEvent.id).order_by(OrderEvent.id.desc()).limit(1)) == events
    assert n["paid"] not in {o.number for o in report.orders}


def test_windows_are_configurable(db_url, tmp_path):
    app = make_test_app(
        db_url, tmp_path / "i", retention_fulfilled_days=14, retention_unpaid_hours=2
    )
    from shop.demo import seed_demo

    database = app.extensions["shop.db"]
    seed_demo(database, app.extensions["shop.settings"])
    with database.job_session() as s:
        a = place(s, now=T0)
        pay(s, a, now=T0)
        service.fulfil(s, a, now=T0)
        b = place(s, now=T0)
        service.cancel(s, b, now=T0)
    assert _due(database, T0 + 3 * H) == {b.number}
    assert _due(database, T0 + 14 * D + H) == {a.number, b.number}
    database.dispose()


def test_other_features_plug_in_erasers_and_holds(demo_catalog, database, monkeypatch):
    seen: list[list[int]] = []
    monkeypatch.setitem(
        purge_mod._ERASERS,
        "test-refund-addresses",
        lambda session, ids: seen.append(list(ids)) or len(ids),
    )
    held: set[int] = set()
    monkeypatch.setitem(purge_mod._HOLDS, "test-disputes", lambda session, ids: held & set(ids))
    with database.job_session() as s:
        a, b = place(s, now=T0), place(s, now=T0)
        service.cancel(s, a, now=T0)
        service.cancel(s, b, now=T0)
        held.add(b.id)
    with database.job_session() as s:
        report = purge(s, session_settings(s), as_of=T0 + 2 * D)
    assert [o.number for o in report.orders] == [a.number]
    assert seen == [[a.id]] and report.erased_rows["test-refund-addresses"] == 1
    held.clear()
    with database.job_session() as s:
        assert [o.number for o in purge(s, session_settings(s), as_of=T0 + 2 * D).orders] == [
            b.number
        ]
    # The public decorators register under a name (replacing, never duplicating).
    register_eraser("test-refund-addresses")(lambda session, ids: 0)
    register_hold("test-disputes", lambda session, ids: set())
    assert "test-refund-addresses" in purge_mod.erasers()


def test_the_worker_purges_at_most_once_a_day(demo_catalog, database):
    with database.job_session() as s:
        first = place(s, now=T0)
        service.cancel(s, first, now=T0)
    assert daily_purge(database, now=T0 + 2 * D) == 1
    with database.job_session() as s:
        second = place(s, now=T0)
        service.cancel(s, second, now=T0)
    assert daily_purge(database, now=T0 + 2 * D + 23 * H) == 0  # ran less than a day ago
    with database.job_session() as s:
        assert s.get(Order, second.id).personal_data_erased_at is None
    assert daily_purge(database, now=T0 + 3 * D + H) == 1
    # It is one of the worker's jobs, on the real clock: the first tick purges ...
    with database.job_session() as s:
        third = place(s, now=T0)
        service.cancel(s, third, now=T0)
    assert run_once(database)["privacy-purge"] == 1
    # ... and the next ticks of the same day do nothing, even with something due.
    with database.job_session() as s:
        fourth = place(s, now=T0)
        service.cancel(s, fourth, now=T0)
    assert run_once(database)["privacy-purge"] == 0
    with database.job_session() as s:
        assert s.get(Order, fourth.id).personal_data_erased_at is None


def test_cli_purge_dry_run_and_as_of(demo_catalog, database):
    with database.job_session() as s:
        order = place(s, now=T0)
        service.cancel(s, order, now=T0)
    from shop.privacy.cli import privacy

    runner = demo_catalog.test_cli_runner()
    early = runner.invoke(privacy, ["purge", "--dry-run", "--as-of", "2026-03-01T12:00"])
    assert early.exit_code == 0, early.output
    assert "would erase personal data of 0 order(s)" in early.output
    dry = runner.invoke(privacy, ["purge", "--dry-run", "--as-of", "2026-03-03"])
    assert order.number in dry.output and "would erase personal data of 1 order(s)" in dry.output
    with database.job_session() as s:
        assert read_contact(s, s.get(Order, order.id)) is not None  # dry run changed nothing
    real = runner.invoke(privacy, ["purge", "--as-of", "2026-03-03"])
    assert "erased personal data of 1 order(s)" in real.output
    with database.job_session() as s:
        assert read_contact(s, s.get(Order, order.id)) is None
    bad = runner.invoke(privacy, ["purge", "--as-of", "next tuesday"])
    assert bad.exit_code == 2 and "not an ISO date" in bad.output


@pytest.mark.parametrize("years", [7, 10])
def test_purge_deletes_ledger_entries_after_the_configured_years(db_url, tmp_path, years):
    app = make_test_app(db_url, tmp_path / "i", ledger_retention_years=years)
    from shop.demo import seed_demo

    database = app.extensions["shop.db"]
    seed_demo(database, app.extensions["shop.settings"])
    with database.job_session() as s:
        pay(s, place(s, now=T0), now=T0)
    last_day = datetime(2026 + years, 12, 31, 23, tzinfo=UTC)
    with database.job_session() as s:
        assert purge(s, session_settings(s), now=last_day).ledger_entries_deleted == 0
        assert purge(s, session_settings(s), now=last_day + 2 * H).ledger_entries_deleted == 1
    database.dispose()


def test_a_simulated_date_never_deletes_the_ledger(demo_catalog, database):
    """--as-of looks at another moment; the fiscal retention counts from the real clock."""
    with database.job_session() as s:
        pay(s, place(s, now=T0), now=T0)
    far = datetime(2040, 1, 2, tzinfo=UTC)
    from shop.privacy.cli import privacy

    runner = demo_catalog.test_cli_runner()
    refused = runner.invoke(privacy, ["purge", "--as-of", far.isoformat()])
    assert refused.exit_code == 2 and "--dry-run" in refused.output
    dry = runner.invoke(privacy, ["purge", "--dry-run", "--as-of", far.isoformat()])
    assert dry.exit_code == 0 and "would delete 1 ledger entr" in dry.output
    with database.job_session() as s:
        report = purge(s, session_settings(s), as_of=far)
        assert report.ledger_entries_deleted == 0
    with database.job_session() as s:
        assert ledger.totals(s)["EUR"].entries == 1
