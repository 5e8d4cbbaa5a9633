"""The app installs log redaction itself: no email or IP address reaches a log at any level."""

from __future__ import annotations

import io
import logging

import pytest

from shop.privacy.logging import RedactingFilter
from tests.conftest import make_test_app

LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]


@pytest.fixture
def root_stream():
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_create_app_redacts_every_level(db_url, tmp_path, root_stream):
    stream, handler = root_stream
    app = make_test_app(db_url, tmp_path / "i")
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    names = ("shop", "shop.orders.service", "werkzeug", "gunicorn.error")
    saved = {name: logging.getLogger(name).level for name in names}
    try:
        for name in names:
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)  # other tests may have raised it
            for level in LEVELS:
                logger.log(level, "customer %s from %s", "ada@example.org", "203.0.113.7")
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    try:
        raise ValueError("bad address ada@example.org")
    except ValueError:
        logging.getLogger("shop.jobs").exception("job failed for 2001:db8::1")
    out = stream.getvalue()
    assert out.count("customer [email] from [ip]") == 4 * len(LEVELS)
    assert "ada@example.org" not in out and "203.0.113.7" not in out and "2001:db8::1" not in out
    assert "bad address [email]" in out  # the traceback too
    app.extensions["shop.db"].dispose()


def test_api_payload_dumps_never_reach_a_log(db_url, tmp_path, root_stream):
    stream, _ = root_stream
    app = make_test_app(db_url, tmp_path / "i")
    stripe_log = logging.getLogger("stripe")
    body = 'body=\'{"customer_details": {"name": "Jenny Rosen", "line1": "Hauptstrasse 1"}}\''
    stripe_log.debug("Stripe API response %s", body)
    stripe_log.setLevel(logging.DEBUG)  # even when someone turns the level back down
    stripe_log.debug("Stripe API response %s", body)
    stripe_log.info("Stripe API response path=/v1/checkout/sessions response_code=200")
    stripe_log.setLevel(logging.INFO)
    out = stream.getvalue()
    assert "Jenny" not in out and "Hauptstrasse" not in out
    assert "response_code=200" in out  # useful operational lines still pass
    app.extensions["shop.db"].dispose()
