"""Settings validation, the invoice state machine, amounts and address allocation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from shop.config import ConfigError, load_settings
from shop.db import Database
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.payments.bitcoin.settings import SIMULATED_DESCRIPTOR, BitcoinPolicy, percent_to_bp
from tests.bitcoin.conftest import RATE, TEST_DESCRIPTOR, place

# BIP32 test vector 1's master private key: a real xprv must never be accepted.
XPRV = (
    "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRN"
    "NU3TGtRBeJgk33yuGBxrMPHi"
)


def _settings(**env):
    return load_settings(environ={f"SHOP_{k.upper()}": v for k, v in env.items()})


def test_defaults():
    s = _settings()
    assert (
        s.bitcoin_payment_window_minutes,
        s.bitcoin_confirmations,
        s.bitcoin_zero_conf_max_sats,
        s.bitcoin_underpayment_tolerance_percent,
        s.bitcoin_underpayment_tolerance_sats,
        s.bitcoin_late_payment_days,
        s.bitcoin_gap_limit,
    ) == (30, 1, 0, "0", 0, 7, 20)


def test_private_key_is_refused_with_the_reason_and_without_echoing_it():
    with pytest.raises(ConfigError) as exc:
        _settings(
            bitcoin_descriptor=f"wpkh({XPRV}/0/*)", bitcoin_rpc_url="http://u:p@127.0.0.1:8332"
        )
    message = str(exc.value)
    assert "SHOP_BITCOIN_DESCRIPTOR" in message and "private key" in message
    assert "never put a private key on a web server" in message
    assert XPRV[:20] not in message


def test_wrong_network_and_missing_node_are_refused():
    with pytest.raises(ConfigError) as exc:
        _settings(bitcoin_descriptor=SIMULATED_DESCRIPTOR, bitcoin_network="main")
    message = str(exc.value)
    assert "configured for 'main'" in message
    assert "SHOP_BITCOIN_RPC_URL is required" in message


def test_valid_configuration_and_zero_values_from_the_environment():
    s = _settings(
        bitcoin_descriptor=SIMULATED_DESCRIPTOR,
        bitcoin_network="regtest",
        bitcoin_rpc_url="http://127.0.0.1:18443",
        bitcoin_rpc_cookie="/tmp/.cookie",
        bitcoin_zmq_block="tcp://127.0.0.1:28332",
        bitcoin_zero_conf_max_sats="0",
        bitcoin_underpayment_tolerance_percent="0.5",
        bitcoin_underpayment_tolerance_sats="0",
        bitcoin_confirmations="3",
    )
    assert s.bitcoin_confirmations == 3 and s.bitcoin_zero_conf_max_sats == 0


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"bitcoin_network": "mainnet"}, "SHOP_BITCOIN_NETWORK must be one of"),
        ({"bitcoin_underpayment_tolerance_percent": "abc"}, "TOLERANCE_PERCENT must be a number"),
        ({"bitcoin_underpayment_tolerance_percent": "0.001"}, "at most two decimals"),
        ({"bitcoin_confirmations": "0"}, "SHOP_BITCOIN_CONFIRMATIONS"),
        ({"bitcoin_zmq_tx": "localhost"}, "SHOP_BITCOIN_ZMQ_TX must be a ZMQ endpoint"),
        ({"bitcoin_rpc_url": "https://node:8332"}, "must start with http://"),
        (
            {"bitcoin_rpc_url": "http://node:8332"},
            "give credentials in the RPC URL or a cookie_file",
        ),
        (
            {"bitcoin_simulated": "1", "env": "production"},
            "SHOP_BITCOIN_SIMULATED cannot be enabled",
        ),
    ],
)
def test_invalid_settings(env, fragment):
    with pytest.raises(ConfigError) as exc:
        _settings(**env)
    assert fragment in str(exc.value)


def test_production_refuses_test_networks_and_the_simulated_chain():
    with pytest.raises(ConfigError) as exc:
        _settings(
            env="production",
            bitcoin_descriptor=SIMULATED_DESCRIPTOR,
            bitcoin_network="regtest",
            bitcoin_rpc_url="http://u:p@127.0.0.1:18443",
            bitcoin_simulated="1",
        )
    message = str(exc.value)
    assert "test coins are worthless" in message
    assert "SHOP_BITCOIN_SIMULATED cannot be enabled in production" in message


def test_tolerance_is_exact_integer_arithmetic():
    assert percent_to_bp("0.5") == 50 and percent_to_bp("12") == 1200
    policy = BitcoinPolicy(tolerance_bp=50, tolerance_sats=100)
    assert policy.tolerance_for(1_000_000) == 5000  # 0.5 % wins
    assert policy.tolerance_for(1_000) == 100  # the absolute amount wins


def test_btc_text_and_bip21_are_exact():
    assert inv.btc_text(1) == "0.00000001"
    assert inv.btc_text(2_100_000_000_000_000) == "21000000.00000000"
    assert inv.sats_due(799, "EUR", inv.LockedRate(Decimal("50000"))) == 15980
    assert inv.sats_due(1, "EUR", inv.LockedRate(Decimal("30000"))) == 34  # rounded up
    assert inv.sats_due(12345, "BTC", inv.LockedRate(Decimal(1))) == 12345


def test_invoice_creation_allocates_fresh_indexes_once_per_order(db, method):
    now = datetime.now(UTC)
    with db.job_session() as s:
        a, b = place(s, now=now), place(s, now=now)
        first = inv.create_invoice(
            s, a, method.descriptor, method.policy, inv.LockedRate(RATE), now
        )
        again = inv.create_invoice(
            s, a, method.descriptor, method.policy, inv.LockedRate(RATE), now
        )
        second = inv.create_invoice(
            s, b, method.descriptor, method.policy, inv.LockedRate(RATE), now
        )
        assert first.id == again.id
        assert (first.derivation_index, second.derivation_index) == (0, 1)
        assert first.address == method.descriptor.address(0)
        assert bytes(second.script_pubkey) == method.descriptor.script_pubkey(1)
        assert first.expires_at == now + method.policy.payment_window
        assert a.expires_at == first.expires_at  # the reservation lasts as long as the invoice
        assert inv.address_gap(s, method.descriptor.fingerprint()) == 2
    with db.job_session() as s:
        order = place(s, now=now)
        with pytest.raises(inv.BitcoinUnavailable):
            inv.create_invoice(s, order, method.descriptor, method.policy, None, now)


def test_unique_constraints_make_address_reuse_impossible(db, method):
    now = datetime.now(UTC)
    with db.job_session() as s:
        first = inv.create_invoice(
            s, place(s, now=now), method.descriptor, method.policy, inv.LockedRate(RATE), now
        )
        fields = {
            c: getattr(first, c)
            for c in (
                "descriptor_fingerprint",
                "derivation_index",
                "address",
                "script_pubkey",
                "amount_sats",
                "order_total",
                "currency",
                "rate",
                "status",
                "created_at",
                "expires_at",
                "monitor_until",
            )
        }
        other = place(s, now=now)
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), db.job_session() as s:
        s.add(BitcoinInvoice(order_id=other.id, **fields))


def test_concurrent_allocation_on_postgres(pg_url, tmp_path):
    """20 app-server threads create invoices at once: 20 distinct indexes, no gaps, no reuse."""
    from shop.demo import seed_demo
    from tests.bitcoin.conftest import btc_settings
    from tests.conftest import make_test_app

    app = make_test_app(pg_url, tmp_path / "instance", **btc_settings(None))
    database: Database = app.extensions["shop.db"]
    seed_demo(database, app.extensions["shop.settings"])
    method = app.extensions["shop.payment_methods"]["bitcoin"]
    now = datetime.now(UTC)
    with database.job_session() as s:
        order_ids = [place(s, now=now).id for _ in range(20)]
    barrier = threading.Barrier(20 + 10)
    errors: list[BaseException] = []

    def create(order_id: int) -> None:
        try:
            barrier.wait()
            from shop.orders.models import Order

            with database.job_session() as s:
                order = s.get(Order, order_id)
                inv.create_invoice(
                    s, order, method.descriptor, method.policy, inv.LockedRate(RATE), now
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # 20 different orders, plus 10 racing reloads of the first order's page.
    threads = [threading.Thread(target=create, args=(oid,)) for oid in order_ids]
    threads += [threading.Thread(target=create, args=(order_ids[0],)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []  # racing reloads wait for the first and get its invoice
    with database.job_session() as s:
        indexes = s.scalars(select(BitcoinInvoice.derivation_index)).all()
        per_order = s.scalar(select(func.count(func.distinct(BitcoinInvoice.order_id))))
    assert len(indexes) == 20 and per_order == 20
    assert sorted(indexes) == list(range(20))  # distinct, and none lost to the races
    database.dispose()


def test_test_descriptor_is_the_configured_one(method):
    assert method.descriptor.canonical.startswith(TEST_DESCRIPTOR.split("tpub")[0])


def test_address_gap_reads_only_paid_invoices_from_an_index(db, method):
    """The gap check runs every watcher round: with no paid invoice among many it must not scan
    the table, yet count from the last address that received anything."""
    now = datetime.now(UTC)
    fp = method.descriptor.fingerprint()
    with db.job_session() as s:
        invoices = [
            inv.create_invoice(
                s, place(s, now=now), method.descriptor, method.policy, inv.LockedRate(RATE), now
            )
            for _ in range(4)
        ]
        assert inv.address_gap(s, fp) == 4
        invoices[1].received_sats = 1_000
        s.flush()
        assert inv.address_gap(s, fp) == 2
        query = inv.last_used_query(fp)
        conn = s.connection()
        if db.is_postgres:
            # A table of four rows would be scanned anyway: ask whether the index can answer.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        else:
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(
                str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            )
        assert "ix_bitcoin_invoices_received" in plan, plan
