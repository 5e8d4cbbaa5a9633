"""Personal fields are stored encrypted under a per-order data key wrapped by the master key."""

from __future__ import annotations

import os
import stat
from dataclasses import replace

import pytest
from sqlalchemy import select, text

from shop.config import ConfigError, load_settings
from shop.orders.models import OrderContact
from shop.privacy.crypto import DecryptionError, generate_master_key_text, wrapped_key_id
from shop.privacy.keys import KEY_FILE
from shop.privacy.store import (
    ContactDetails,
    ContactErased,
    erase_contact,
    has_contact,
    read_contact,
    rotate_keys,
    seal,
    set_contact,
    unseal,
)
from tests.conftest import TEST_SECRET, make_test_app
from tests.privacy.helpers import ADA, place


def test_contact_round_trips_and_is_ciphertext_in_the_database(demo_catalog, database):
    with database.job_session() as s:
        order = place(s)
        order_id = order.id
    with database.job_session() as s:
        raw = s.execute(
            text(
                "SELECT wrapped_key, email, name, street, postal_code, city "
                "FROM order_contacts WHERE order_id = :id"
            ),
            {"id": order_id},
        ).one()
        for value in raw:
            blob = bytes(value)
            assert len(blob) >= 29  # version + nonce + tag at least
            for plain in ("ada@example.org", "Ada Lovelace", "Harbour", "10115", "Berlin"):
                assert plain.encode() not in blob
        from shop.orders.models import Order

        assert read_contact(s, s.get(Order, order_id)) == ADA


def test_each_order_has_its_own_key_and_blobs_cannot_move(demo_catalog, database):
    with database.job_session() as s:
        a, b = place(s), place(s)
        ca, cb = s.get(OrderContact, a.id), s.get(OrderContact, b.id)
        assert ca.wrapped_key != cb.wrapped_key and ca.email != cb.email
        # Copying another order's email blob onto this order must fail loudly, not show it.
        ca.email = cb.email
        s.flush()
        with pytest.raises(DecryptionError):
            read_contact(s, a)
        s.rollback()


def test_digital_order_without_email_stores_nothing(demo_catalog, database):
    with database.job_session() as s:
        order = place(s, "EBOOK-SMALL", contact=ContactDetails())
        assert s.get(OrderContact, order.id) is None and read_contact(s, order) is None
        digital = place(s, "EBOOK-SMALL", contact=ADA)  # the form sent an address anyway
        assert read_contact(s, digital) == ContactDetails(email=ADA.email)


def test_erase_destroys_key_and_fields_and_refuses_rewrite(demo_catalog, database):
    with database.job_session() as s:
        order = place(s)
        assert erase_contact(s, order) is True
        assert s.scalar(select(OrderContact).where(OrderContact.order_id == order.id)) is None
        assert read_contact(s, order) is None
        assert erase_contact(s, order) is False
        order.personal_data_erased_at = order.placed_at
        with pytest.raises(ContactErased):
            set_contact(s, order, ADA)


def _epoch_file_master(ring_dir, session, order_id) -> str:
    epoch = session.get(OrderContact, order_id).key_epoch
    return wrapped_key_id((ring_dir / f"{epoch}.key").read_bytes())


def test_rotation_rewraps_under_the_new_key(db_url, tmp_path):
    old_key, new_key = generate_master_key_text(), generate_master_key_text()
    ring = tmp_path / "ring"  # the key ring folder every app server and worker shares
    app = make_test_app(db_url, tmp_path / "i1", data_key=old_key, keyring_path=str(ring))
    from shop.demo import seed_demo

    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    old_id = app.extensions["shop.keyring"].current.key_id
    with app.extensions["shop.db"].job_session() as s:
        order_id = place(s).id
        assert _epoch_file_master(ring, s, order_id) == old_id
    app.extensions["shop.db"].dispose()

    # The new key alone cannot read what the old one wrapped ...
    alone = make_test_app(db_url, tmp_path / "i2", data_key=new_key, keyring_path=str(ring))
    with alone.extensions["shop.db"].job_session() as s:
        from shop.orders.models import Order

        with pytest.raises(Exception, match="not in the keyring"):
            read_contact(s, s.get(Order, order_id))
    alone.extensions["shop.db"].dispose()

    # ... with the old one in SHOP_DATA_KEY_OLD, the rotation command re-wraps the epoch keys.
    rotating = make_test_app(
        db_url, tmp_path / "i3", data_key=new_key, data_key_old=old_key, keyring_path=str(ring)
    )
    runner = rotating.test_cli_runner()
    from shop.privacy.cli import privacy

    result = runner.invoke(privacy, ["rotate-key"])
    assert result.exit_code == 0, result.output
    assert "re-wrapped 1 epoch key(s)" in result.output
    assert runner.invoke(privacy, ["rotate-key"]).output.startswith("re-wrapped 0 epoch key(s)")
    rotating.extensions["shop.db"].dispose()

    after = make_test_app(db_url, tmp_path / "i4", data_key=new_key, keyring_path=str(ring))
    with after.extensions["shop.db"].job_session() as s:
        assert _epoch_file_master(ring, s, order_id) != old_id
        assert read_contact(s, s.get(Order, order_id)) == ADA
    after.extensions["shop.db"].dispose()


def test_data_from_before_epochs_stays_readable_and_moves_into_an_epoch(demo_catalog, database):
    """Orders stored before epoch keys had their data key wrapped by the master key itself."""
    from shop.privacy.crypto import unwrap_with_epoch, wrap_data_key
    from shop.privacy.epochs import session_ring

    with database.job_session() as s:
        order = place(s)
        contact = s.get(OrderContact, order.id)
        data_key = unwrap_with_epoch(
            session_ring(s).key(contact.key_epoch),
            contact.wrapped_key,
            context=f"order:{order.id}".encode(),
        )
        master = demo_catalog.extensions["shop.keyring"].current
        contact.wrapped_key = wrap_data_key(master, data_key, context=f"order:{order.id}".encode())
        contact.key_epoch = None  # as migration 0010 leaves older rows
    with database.job_session() as s:
        assert read_contact(s, s.get(type(order), order.id)) == ADA
        result = rotate_keys(s)
        assert result.moved_to_epochs == 1
    with database.job_session() as s:
        assert s.get(OrderContact, order.id).key_epoch is not None
        assert read_contact(s, s.get(type(order), order.id)) == ADA
        assert rotate_keys(s).moved_to_epochs == 0


def test_rotate_keys_skips_current_and_counts(demo_catalog, database):
    with database.job_session() as s:
        place(s), place(s)
        result = rotate_keys(s)
        # Both orders share today's epoch: one file, already under the current master key.
        assert (
            result.epoch_files_rewrapped,
            result.epoch_files_current,
            result.moved_to_epochs,
        ) == (0, 1, 0)


def test_demo_generates_a_private_instance_key(db_url, tmp_path):
    app = make_test_app(db_url, tmp_path / "inst")
    key_file = tmp_path / "inst" / KEY_FILE
    assert key_file.exists() and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert app.extensions["shop.settings"].data_key == key_file.read_text().strip()
    again = make_test_app(db_url, tmp_path / "inst")
    assert (
        again.extensions["shop.keyring"].current.key_id
        == app.extensions["shop.keyring"].current.key_id
    )
    for a in (app, again):
        a.extensions["shop.db"].dispose()


def test_production_refuses_to_start_without_a_valid_data_key():
    base = {
        "SHOP_ENV": "production",
        "SHOP_SECRET_KEY": TEST_SECRET,
        "SHOP_DATABASE_URL": "postgresql://x@localhost/shop",
    }
    with pytest.raises(ConfigError) as exc:
        load_settings(base)
    assert any("SHOP_DATA_KEY is required" in p for p in exc.value.problems)
    bad = "not a key!"
    with pytest.raises(ConfigError) as exc:
        load_settings({**base, "SHOP_DATA_KEY": bad})
    assert bad not in str(exc.value)  # the message never repeats a secret
    key = generate_master_key_text()
    settings = load_settings({**base, "SHOP_DATA_KEY": key})
    assert settings.data_key == key
    with pytest.raises(ConfigError, match="SHOP_DATA_KEY_OLD"):
        load_settings({**base, "SHOP_DATA_KEY": key, "SHOP_DATA_KEY_OLD": "short"})
    assert replace(settings, data_key_old=key).data_key_old == key


def test_retention_settings_are_validated():
    with pytest.raises(ConfigError) as exc:
        load_settings({"SHOP_RETENTION_FULFILLED_DAYS": "0", "SHOP_LEDGER_RETENTION_YEARS": "99"})
    text_ = str(exc.value)
    assert "SHOP_RETENTION_FULFILLED_DAYS" in text_ and "SHOP_LEDGER_RETENTION_YEARS" in text_
    s = load_settings({"SHOP_RETENTION_UNPAID_HOURS": "48", "SHOP_LEDGER_RETENTION_YEARS": "10"})
    assert (s.retention_unpaid_hours, s.ledger_retention_years) == (48, 10)


def test_other_features_seal_values_under_the_same_order_key(demo_catalog, database):
    address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    with database.job_session() as s:
        order = place(s, "EBOOK-SMALL", contact=ContactDetails())  # no contact row yet
        blob = seal(s, order, "refund-address", address)
        assert address.encode() not in blob
        assert read_contact(s, order) is None and not has_contact(s, order)  # key only
        assert unseal(s, order, "refund-address", blob) == address
        with pytest.raises(DecryptionError):
            unseal(s, order, "other-purpose", blob)  # bound to its purpose
        with pytest.raises(ValueError):
            seal(s, order, "bad:purpose", address)
        set_contact(s, order, ContactDetails(email=ADA.email))  # same key: the blob still opens
        assert unseal(s, order, "refund-address", blob) == address
        rotate_keys(s)
        erase_contact(s, order)  # destroying the key makes every sealed copy unreadable
        assert unseal(s, order, "refund-address", blob) is None
        order.personal_data_erased_at = order.placed_at
        with pytest.raises(ContactErased):
            seal(s, order, "refund-address", address)
        assert seal(s, order, "refund-address", None) is None
