from __future__ import annotations

import io
import logging
import re
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from shop.privacy.logging import (
    PersonalValue,
    PrivateRequestHandler,
    RedactingFilter,
    RedactingFormatter,
    access_log_format,
    install_redaction,
    mark_personal,
    redact,
    werkzeug_quiet,
)

EMAIL = "ana.lovelace@example.org"
IPV4 = "203.0.113.42"
IPV6 = "2001:db8:85a3::8a2e:370:7334"
BTC_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


def _remove_redacting_filters(filterer: logging.Filterer) -> None:
    for flt in list(filterer.filters):
        if isinstance(flt, RedactingFilter):
            filterer.removeFilter(flt)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield
    for handler in root.handlers:
        _remove_redacting_filters(handler)
        if handler not in handlers:
            root.removeHandler(handler)
    _remove_redacting_filters(root)
    if logging.lastResort is not None:
        _remove_redacting_filters(logging.lastResort)


@pytest.fixture
def captured(restore_logging: None) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A fresh logger whose own handler writes to a buffer, with redaction installed."""
    logger = logging.getLogger(f"test.privacy.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    install_redaction(logger)
    yield logger, buffer
    logger.removeHandler(handler)


# --- redact() --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"mail {EMAIL} now", "mail [email] now"),
        ("GET /s?email=a.b+c@ex-ample.co.uk&x=1", "GET /s?email=[email]&x=1"),
        ("/unsubscribe/ana%40example.org", "/unsubscribe/[email]"),
        ("ünïcødé jörg@müller.de", "ünïcødé [email]"),
        (f"from {IPV4}:443", "from [ip]:443"),
        (f"from {IPV4}.", "from [ip]."),
        (f"peer {IPV6} said hi", "peer [ip] said hi"),
        ("peer [fe80::1%eth0]:80", "peer [[ip]]:80"),
        ("mapped ::ffff:10.0.0.1 ok", "mapped [ip] ok"),
        ("loopback ::1", "loopback [ip]"),
    ],
)
def test_redact_masks_personal_data(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3",
        "python 3.11.7",
        "five parts 1.2.3.4.5",
        "v1.2.3.4",
        "not an ip 10.0.0.256",
        "at 12:30:45",
        "2024-05-01 12:30:45,123",
        "took 00:00:01.250",
        "mac 00:1a:2b:3c:4d:5e",
        "std::vector",
        f"refund {BTC_ADDRESS} tx {TXID}",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        "price 12.50 EUR, 3 items",
        "Is this a question? yes",
    ],
)
def test_redact_leaves_operational_data(text: str) -> None:
    assert redact(text) == text


def test_redact_is_idempotent() -> None:
    once = redact(f"{EMAIL} {IPV4} {IPV6}")
    assert redact(once) == once


# --- PersonalValue ---------------------------------------------------------------------


def test_personal_value_never_renders() -> None:
    value = mark_personal(BTC_ADDRESS)
    assert isinstance(value, PersonalValue)
    rendered = [
        str(value),
        repr(value),
        format(value),
        f"{value}",
        f"{value!r}",
        f"{value:>60}",
        # Old-style and str.format paths are what logging and libraries use.
        "%s" % value,  # noqa: UP031
        "%r" % (value,),  # noqa: UP031
        "{}".format(value),  # noqa: UP032
        repr([value]),
        repr({"refund": value}),
    ]
    for text in rendered:
        assert BTC_ADDRESS not in text
        assert "[redacted]" in text
    assert value.reveal() == BTC_ADDRESS


def test_personal_value_in_log_args(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    logger.info("refund to %s (tx %s)", mark_personal(BTC_ADDRESS), TXID)
    logger.info("refund %r", {"address": mark_personal(BTC_ADDRESS)})
    output = buffer.getvalue()
    assert BTC_ADDRESS not in output
    assert output.count("[redacted]") == 2
    assert TXID in output  # txids are operational data


# --- RedactingFilter / install_redaction -----------------------------------------------


@pytest.mark.parametrize(
    "level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
)
def test_every_level_is_redacted(
    captured: tuple[logging.Logger, io.StringIO], caplog: pytest.LogCaptureFixture, level: int
) -> None:
    logger, buffer = captured
    caplog.set_level(logging.DEBUG, logger=logger.name)
    logger.log(level, "order for %s from %s / %s", EMAIL, IPV4, IPV6)
    logger.log(level, f"inline {EMAIL} {IPV4} {IPV6} at 12:30:45 v1.2.3")
    output = buffer.getvalue()
    for secret in (EMAIL, IPV4, IPV6):
        assert secret not in output
        assert secret not in caplog.text
    assert "order for [email] from [ip] / [ip]" in output
    assert "12:30:45 v1.2.3" in output
    assert all(record.args == () for record in caplog.records)


def test_exception_text_is_redacted(
    captured: tuple[logging.Logger, io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    logger, buffer = captured
    caplog.set_level(logging.DEBUG, logger=logger.name)
    try:
        raise ValueError(f"no such customer {EMAIL} at {IPV4}")
    except ValueError:
        logger.exception("lookup failed for %s", IPV6)
    output = buffer.getvalue()
    assert "Traceback" in output and "ValueError: no such customer [email] at [ip]" in output
    assert "lookup failed for [ip]" in output
    for secret in (EMAIL, IPV4, IPV6):
        assert secret not in output
        assert secret not in caplog.text
    (record,) = caplog.records
    # A formatter that re-renders exc_info itself must not get the raw exception back.
    assert record.exc_info is None
    assert record.exc_text is not None and EMAIL not in record.exc_text


def test_stack_info_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured

    # The stack shows this source line, email included, unless stack_info is redacted.
    logger.warning("where am I ana.lovelace@example.org", stack_info=True)
    output = buffer.getvalue()
    assert "Stack (most recent call last)" in output
    assert EMAIL not in output


def test_unrenderable_args_do_not_raise_or_leak(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured
    logger.info("count %d for %s", "not-a-number", EMAIL)
    output = buffer.getvalue()
    assert EMAIL not in output
    assert "unrenderable" in output


def test_records_from_child_loggers_are_redacted_by_root_handlers(
    restore_logging: None,
) -> None:
    root = logging.getLogger()
    buffer = io.StringIO()
    root.addHandler(logging.StreamHandler(buffer))
    install_redaction()
    install_redaction()  # idempotent
    assert sum(isinstance(f, RedactingFilter) for f in root.handlers[-1].filters) == 1

    child = logging.getLogger(f"shop.orders.{uuid.uuid4().hex}")
    child.setLevel(logging.INFO)
    child.info("paid by %s from %s", EMAIL, IPV4)
    output = buffer.getvalue()
    assert "paid by [email] from [ip]" in output
    assert EMAIL not in output and IPV4 not in output


def test_redacting_formatter_without_filter(restore_logging: None) -> None:
    logger = logging.getLogger(f"test.privacy.fmt.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    try:
        raise RuntimeError(f"bad {EMAIL}")
    except RuntimeError:
        logger.exception("client %s", IPV6)
    output = buffer.getvalue()
    assert EMAIL not in output and IPV6 not in output
    assert "client [ip]" in output and "RuntimeError: bad [email]" in output
    assert re.search(r"\d\d:\d\d:\d\d,\d{3}", output)  # asctime survives


# --- gunicorn --------------------------------------------------------------------------


def test_gunicorn_access_log_format_has_no_personal_atoms() -> None:
    atoms = set(re.findall(r"%\(([^)]*)\)s", access_log_format))
    assert not atoms & {"h", "a", "f", "r", "q", "u"}
    assert not any(atom.startswith("{") for atom in atoms)  # no raw headers/env
    assert {"m", "U", "s"} <= atoms
    rendered = access_log_format % {atom: f"<{atom}>" for atom in atoms}
    assert '"<m> <U> <H>" <s>' in rendered


# --- werkzeug development server -------------------------------------------------------


def _app(environ: dict[str, object], start_response: object) -> list[bytes]:
    body = str(environ["REMOTE_ADDR"]).encode()
    status = "404 NOT FOUND" if environ["PATH_INFO"] == "/missing" else "200 OK"
    start_response(  # type: ignore[operator]
        status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


@pytest.fixture
def werkzeug_log() -> Iterator[io.StringIO]:
    logger = logging.getLogger("werkzeug")
    level, filters = logger.level, list(logger.filters)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(level)
    for flt in list(logger.filters):
        if flt not in filters:
            logger.removeFilter(flt)


@contextmanager
def _serve(handler_class: type[WSGIRequestHandler]) -> Iterator[tuple[str, int]]:
    server = make_server("127.0.0.1", 0, _app, request_handler=handler_class)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_port
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _get(host: str, port: int, path: str) -> tuple[int, str]:
    # Without an explicit empty ProxyHandler an http_proxy variable would reroute this.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{host}:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


QUERY = f"?email=x@y.z&note={EMAIL.replace('@', '%40')}"


def test_private_request_handler_logs_no_ip_and_no_query(werkzeug_log: io.StringIO) -> None:
    with _serve(PrivateRequestHandler) as (host, port):
        status, body = _get(host, port, f"/orders/7{QUERY}")
        missing, _ = _get(host, port, f"/missing{QUERY}")
    assert (status, missing) == (200, 404)
    assert body == "127.0.0.1"  # the application still sees REMOTE_ADDR
    output = werkzeug_log.getvalue()
    assert '"GET /orders/7" 200' in output
    assert '"GET /missing" 404' in output
    for leaked in ("127.0.0.1", "x@y.z", "email", "%40", "?", "example.org"):
        assert leaked not in output


def test_private_request_handler_bad_request_line(werkzeug_log: io.StringIO) -> None:
    with (
        _serve(PrivateRequestHandler) as (host, port),
        socket.create_connection((host, port), timeout=5) as sock,
    ):
        # Four words: the error message quotes the whole raw request line.
        sock.sendall(b"GET /x?email=x@y.z extra HTTP/1.1\r\n\r\n")
        status_line = sock.recv(1024).split(b"\r\n", 1)[0]
    assert b" 400 " in status_line
    output = werkzeug_log.getvalue()
    assert "Bad request syntax ('GET /x extra HTTP/1.1')" in output
    for leaked in ("127.0.0.1", "x@y.z", "email"):
        assert leaked not in output


def test_stock_handler_leaks_without_werkzeug_quiet(werkzeug_log: io.StringIO) -> None:
    # Guards the test setup: the stock handler really does log what we strip (with the
    # process-wide record redaction, which an app built earlier installed, set aside).
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        with _serve(WSGIRequestHandler) as (host, port):
            _get(host, port, f"/orders/7{QUERY}")
    finally:
        logging.setLogRecordFactory(factory)
    output = werkzeug_log.getvalue()
    assert "127.0.0.1" in output and "x@y.z" in output


def test_werkzeug_quiet_cleans_stock_handler(werkzeug_log: io.StringIO) -> None:
    flt = werkzeug_quiet()
    assert werkzeug_quiet() is flt
    with _serve(WSGIRequestHandler) as (host, port):
        _get(host, port, f"/orders/7{QUERY}")
        _get(host, port, f"/missing{QUERY}")
    output = werkzeug_log.getvalue()
    assert "GET /orders/7 HTTP/1.1" in output
    assert "GET /missing HTTP/1.1" in output
    for leaked in ("127.0.0.1", "x@y.z", "email", "%40", "?"):
        assert leaked not in output
