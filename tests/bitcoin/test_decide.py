"""The invoice decision as a table: (invoice, the node's view, now, policy) -> status, exception.

`decide` is pure, so every case is one line; `flags` says what the merchant must act on.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shop.payments.bitcoin.invoice import (
    Exc,
    InvoiceFacts,
    PaymentFacts,
    Status,
    decide,
    flags,
)
from shop.payments.bitcoin.settings import BitcoinPolicy

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DUE = 10_000
EXPIRES = T0 + timedelta(minutes=30)
POLICY = BitcoinPolicy(confirmations=2)
ZERO_CONF = dataclasses.replace(
    POLICY, zero_conf_max_sats=50_000, zero_conf_settle=timedelta(seconds=60)
)
TIP = 100


def pay(
    sats, status="confirmed", height=TIP - 1, seen=T0, txid=None, parents=False, conflict=False
) -> PaymentFacts:
    return PaymentFacts(
        txid or f"tx{sats}{status}{height}{seen:%M}",
        sats,
        status,
        height if status == "confirmed" else None,
        seen,
        parents,
        conflict,
    )


LATE = T0 + timedelta(hours=1)
CASES = [
    # (name, payments, paid_reported, marked, now, policy, status, exception, credited)
    ("nothing yet", [], False, "", T0, POLICY, Status.NEW, Exc.NONE, 0),
    ("nothing, window over", [], False, "", LATE, POLICY, Status.EXPIRED, Exc.NONE, 0),
    (
        "unconfirmed, enough",
        [pay(DUE, "mempool")],
        False,
        "",
        T0,
        POLICY,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
    (
        "one confirmation of two",
        [pay(DUE, height=TIP)],
        False,
        "",
        T0,
        POLICY,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
    ("two confirmations", [pay(DUE)], False, "", T0, POLICY, Status.SETTLED, Exc.NONE, DUE),
    ("part confirmed", [pay(DUE // 2)], False, "", T0, POLICY, Status.NEW, Exc.PARTIAL, DUE // 2),
    (
        "part, expired",
        [pay(DUE // 2)],
        False,
        "",
        LATE,
        POLICY,
        Status.EXPIRED,
        Exc.PARTIAL,
        DUE // 2,
    ),
    (
        "two halves",
        [pay(DUE // 2), pay(DUE // 2, height=TIP - 3)],
        False,
        "",
        T0,
        POLICY,
        Status.SETTLED,
        Exc.NONE,
        DUE,
    ),
    (
        "over, confirmed",
        [pay(DUE + 500)],
        False,
        "",
        T0,
        POLICY,
        Status.SETTLED,
        Exc.OVER,
        DUE + 500,
    ),
    (
        "over only in the mempool is not over",
        [pay(DUE), pay(500, "mempool")],
        False,
        "",
        T0,
        POLICY,
        Status.SETTLED,
        Exc.NONE,
        DUE,
    ),
    (
        "paid after expiry",
        [pay(DUE, seen=LATE)],
        False,
        "",
        LATE,
        POLICY,
        Status.SETTLED,
        Exc.LATE,
        DUE,
    ),
    (
        "replaced, nothing left",
        [pay(DUE, "removed")],
        False,
        "",
        T0,
        POLICY,
        Status.INVALID,
        Exc.NONE,
        0,
    ),
    (
        "replaced by one that pays",
        [pay(DUE, "removed"), pay(DUE, "mempool", txid="b")],
        False,
        "",
        T0,
        POLICY,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
    (
        "removed never counts",
        [pay(DUE, "removed"), pay(DUE)],
        False,
        "",
        T0,
        POLICY,
        Status.SETTLED,
        Exc.NONE,
        DUE,
    ),
    (
        "reorged back to the mempool",
        [pay(DUE, "mempool")],
        True,
        "",
        T0,
        POLICY,
        Status.PROCESSING,
        Exc.REVERTED,
        0,
    ),
    (
        "reorged out and gone",
        [pay(DUE, "removed")],
        True,
        "",
        T0,
        POLICY,
        Status.INVALID,
        Exc.REVERTED,
        0,
    ),
    ("confirmed again", [pay(DUE)], True, "", T0, POLICY, Status.SETTLED, Exc.NONE, DUE),
    (
        "merchant settled a part",
        [pay(DUE // 2)],
        False,
        "settled",
        LATE,
        POLICY,
        Status.SETTLED,
        Exc.MARKED,
        DUE // 2,
    ),
    ("merchant gave up", [], False, "invalid", LATE, POLICY, Status.INVALID, Exc.MARKED, 0),
    # zero-conf: one transaction, confirmed inputs, no conflict, settled in the mempool
    (
        "zero-conf too soon",
        [pay(DUE, "mempool")],
        False,
        "",
        T0 + timedelta(seconds=30),
        ZERO_CONF,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
    (
        "zero-conf after settling",
        [pay(DUE, "mempool")],
        False,
        "",
        T0 + timedelta(seconds=60),
        ZERO_CONF,
        Status.SETTLED,
        Exc.NONE,
        DUE,
    ),
    (
        "zero-conf, two transactions",
        [pay(DUE // 2, "mempool"), pay(DUE // 2, "mempool", txid="b")],
        False,
        "",
        LATE,
        ZERO_CONF,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
    (
        "zero-conf, unconfirmed parents",
        [pay(DUE, "mempool", parents=True)],
        False,
        "",
        LATE,
        ZERO_CONF,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
    (
        "zero-conf, a conflict was seen",
        [pay(DUE, "removed", conflict=True), pay(DUE, "mempool", txid="b", conflict=True)],
        False,
        "",
        LATE,
        ZERO_CONF,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
    (
        "zero-conf, too large",
        [pay(60_000, "mempool")],
        False,
        "",
        LATE,
        ZERO_CONF,
        Status.PROCESSING,
        Exc.NONE,
        0,
    ),
]


@pytest.mark.parametrize(
    "name,payments,reported,marked,now,policy,status,exception,credited",
    CASES,
    ids=[c[0] for c in CASES],
)
def test_decision_table(name, payments, reported, marked, now, policy, status, exception, credited):
    due = 60_000 if name == "zero-conf, too large" else DUE
    d = decide(InvoiceFacts(due, EXPIRES, reported, marked), payments, TIP, now, policy)
    assert (d.status, d.exception, d.credited) == (status, exception, credited)


def test_received_and_confirmed_count_each_live_output_once():
    d = decide(
        InvoiceFacts(DUE, EXPIRES, False),
        [pay(3000), pay(4000, "mempool"), pay(9000, "removed")],
        TIP,
        T0,
        POLICY,
    )
    assert (d.received, d.confirmed) == (7000, 3000)


def test_tolerance_counts_a_small_shortfall_as_paid():
    policy = dataclasses.replace(POLICY, tolerance_sats=100)
    d = decide(InvoiceFacts(DUE, EXPIRES, False), [pay(DUE - 100)], TIP, T0, policy)
    assert d.status == Status.SETTLED


def _flags(payments, reported=False, now=T0) -> list[str]:
    facts = InvoiceFacts(DUE, EXPIRES, reported)
    return flags(facts, decide(facts, payments, TIP, now, POLICY), now)


def test_flags_follow_the_money():
    assert _flags([pay(DUE)]) == []
    assert _flags([pay(DUE + 700)]) == [
        f"Overpaid by 700 sats ({DUE + 700} confirmed for {DUE}): refund the difference."
    ]
    assert _flags([pay(DUE), pay(700, "mempool")]) == []  # not there yet: nothing to refund
    assert "do not ship" in _flags([pay(DUE, "mempool")], reported=True)[0]
    assert "Underpaid: 5000" in _flags([pay(5000)], now=LATE)[0]
    assert _flags([pay(5000)]) == []  # the customer may still send the rest
    assert "after the invoice expired" in _flags([pay(DUE, seen=LATE)], now=LATE)[0]
    late_and_over = _flags([pay(DUE + 1, seen=LATE)], now=LATE)
    assert len(late_and_over) == 2


def test_money_arriving_after_the_merchant_gave_up_is_flagged():
    facts = InvoiceFacts(DUE, EXPIRES, False, marked="invalid")
    assert flags(facts, decide(facts, [], TIP, LATE, POLICY), LATE) == []
    d = decide(facts, [pay(DUE)], TIP, LATE, POLICY)
    assert (d.status, d.exception) == (Status.INVALID, Exc.MARKED)
    assert flags(facts, d, LATE) == [
        f"{DUE} sats arrived for a Bitcoin payment you marked "
        "invalid: refund them (the customer's refund address, or "
        "ask)."
    ]
