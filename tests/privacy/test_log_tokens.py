"""Order and download links are bearer credentials: no log may hold one, and redaction stays on
whatever handlers Flask or a server add later."""

from __future__ import annotations

import io
import logging

import pytest

from shop.privacy.logging import PrivateRequestHandler, redact
from tests.conftest import make_test_app

TOKEN = "Zq3xY7wVbN2mK8pL4tR6sD1fG9hJ0cXeA5uI-oP_kQw"


def test_redact_replaces_tokens_in_paths_with_a_short_tag():
    line = f'"GET /orders/{TOKEN}/privacy/data.json HTTP/1.1" 200 and /downloads/{TOKEN}'
    out = redact(line)
    assert TOKEN not in out and TOKEN[:8] not in out
    tag = out.split("/orders/", 1)[1].split("/", 1)[0]
    assert tag.startswith("<tok:") and len(tag) <= 10
    assert "/privacy/data.json" in out and "/downloads/<tok:" in out
    assert redact(f"/orders/{TOKEN}") == redact(f"/orders/{TOKEN}")  # same link, same tag
    assert redact("/products/tote-bag /orders/ /cart") == "/products/tote-bag /orders/ /cart"


@pytest.fixture
def root_stream():
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_the_apps_error_line_has_no_token(db_url, tmp_path, root_stream):
    app = make_test_app(db_url, tmp_path / "i")
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/orders/<token>/boom")
    def boom(token):
        raise RuntimeError("broken")

    assert app.test_client().get(f"/orders/{TOKEN}/boom").status_code == 500
    out = root_stream.getvalue()
    assert "unhandled error on GET /orders/<tok:" in out and TOKEN not in out
    app.extensions["shop.db"].dispose()


def test_redaction_survives_flasks_own_handler(db_url, tmp_path, capfd):
    """Flask adds its default handler to the app logger on first use, after create_app, when
    the root logger has no handler (as in gunicorn's workers); pytest's own handlers, added
    around the test's body, are set aside for it."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        _flask_handler_case(db_url, tmp_path, capfd)
    finally:
        root.handlers[:] = saved


def _flask_handler_case(db_url, tmp_path, capfd):
    app = make_test_app(db_url, tmp_path / "i")
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    logging.getLogger("shop").setLevel(logging.INFO)

    @app.get("/fail")
    def fail():
        app.logger.info("search by ada@example.org from 203.0.113.9")
        raise RuntimeError("commit failed for ada@example.org")

    client = app.test_client()
    for _ in range(2):  # the second time, Flask's handler is certainly in place
        assert client.get(f"/fail?q=ada@example.org&t={TOKEN}").status_code == 500
    logging.getLogger("shop.web.security").error(
        "after: ada@example.org 203.0.113.9 /orders/%s", TOKEN
    )
    captured = capfd.readouterr()
    out = captured.out + captured.err
    assert "ada@example.org" not in out and "203.0.113.9" not in out and TOKEN not in out
    app.extensions["shop.db"].dispose()


def test_demo_request_log_tags_tokens(caplog):
    class Fake(PrivateRequestHandler):
        def __init__(self):
            self.command, self.path = "GET", f"/orders/{TOKEN}?x=1"

    caplog.set_level(logging.INFO, logger="werkzeug")
    Fake().log_request(200)
    assert "/orders/<tok:" in caplog.text and TOKEN not in caplog.text


def test_worker_logging_redacts_handlers_added_later(capfd):
    """`shop worker` configures its handlers; one added afterwards is covered too."""
    from shop.jobs.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("text")
        late = logging.StreamHandler()  # e.g. an error tracker's handler, added after start-up
        # First in line: it must not rely on another handler's filter having redacted first.
        root.handlers.insert(0, late)
        try:
            raise ValueError("no address ada@example.org")
        except ValueError:
            logging.getLogger("shop.jobs.worker").exception("job failed for /orders/%s", TOKEN)
        root.removeHandler(late)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    captured = capfd.readouterr()
    out = captured.out + captured.err
    assert "job failed for /orders/<tok:" in out
    assert TOKEN not in out and "ada@example.org" not in out
