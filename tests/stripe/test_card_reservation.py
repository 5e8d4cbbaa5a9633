"""orders.service.extend_reservation, which card payments use to keep stock while a page is open."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shop.orders import service as orders
from shop.orders.models import Order
from shop.orders.states import IllegalTransition
from tests.stripe.conftest import place_card_order


def test_extends_never_shortens_and_only_while_pending(card_app):
    placed = place_card_order(card_app)
    with card_app.extensions["shop.db"].job_session() as s:
        order = s.get(Order, placed.id)
        original = order.expires_at
        orders.extend_reservation(s, order, original - timedelta(minutes=5))
        assert order.expires_at == original
        later = original + timedelta(minutes=7)
        orders.extend_reservation(s, order, later, "Card payment page opened")
        assert order.expires_at == later
        assert order.events[-1].note == "Card payment page opened"
        orders.expire(s, order)
        with pytest.raises(IllegalTransition):
            orders.extend_reservation(s, order, later + timedelta(hours=1))
        assert order.expires_at == later


def test_the_worker_does_not_expire_an_order_while_its_card_page_is_open(card_app, fake):
    from shop.db import utcnow
    from tests.stripe.conftest import start_card_payment

    placed = place_card_order(card_app)
    start_card_payment(card_app.test_client(), placed)
    with card_app.extensions["shop.db"].job_session() as s:
        # 34 minutes on: the 30-minute reservation alone would have ended.
        assert orders.expire_due_orders(s, now=utcnow() + timedelta(minutes=34)) == 0
        assert orders.expire_due_orders(s, now=utcnow() + timedelta(minutes=36)) == 1
