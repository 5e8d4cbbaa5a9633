"""Keep personal data out of logs.

* ``redact(text)`` masks email addresses and IPv4/IPv6 addresses. Bitcoin addresses and
  txids are deliberately left alone: operators need them, and on their own they do not
  identify a person. When one *does* belong to a person (a refund address), wrap it:
  ``log.info("refund to %s", mark_personal(addr))`` renders ``[redacted]``.
* ``RedactingFilter`` / ``install_redaction`` apply ``redact`` to every record, including
  exception tracebacks; ``RedactingFormatter`` does the same at formatting time for
  handlers created after ``install_redaction`` ran.
* ``access_log_format`` is a gunicorn access-log format without client address, user
  agent, referer, user name or query string.
* ``PrivateRequestHandler`` (for ``app.run(request_handler=...)``) and
  ``werkzeug_quiet()`` (also covers ``flask run``) stop the development server from
  logging client IPs and query strings.

This module is named ``logging`` inside the package; absolute imports keep the standard
library module reachable.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

__all__ = [
    "PersonalValue",
    "PrivateRequestHandler",
    "RedactingFilter",
    "RedactingFormatter",
    "access_log_format",
    "install_redaction",
    "mark_personal",
    "redact",
    "silence_payload_loggers",
    "werkzeug_quiet",
]

REDACTED = "[redacted]"
EMAIL_MASK = "[email]"
IP_MASK = "[ip]"

T = TypeVar("T")

# "%40" too: emails reach logs URL-encoded inside paths and query strings. The local part
# is narrower than RFC 5322 allows so "?email=a@b.c" keeps its "?email=" and only the
# address goes.
_EMAIL = re.compile(
    r"[\w.%+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+",
    re.IGNORECASE,
)

# Candidates only; ipaddress decides. Needing two colons and bounding by non-word,
# non-colon characters keeps "12:30:45", "Foo::bar" and MAC addresses (none of which
# parse as IPv6) intact.
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])"
    r"(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4})"
    r"(?:%[\w.-]+)?"
    r"(?![\w:])",
    re.IGNORECASE,
)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Exactly four dotted octets: "1.2.3" (a version) and "1.2.3.4.5" are not addresses.
# A trailing "." is allowed so an IP ending a sentence is still caught.
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")

# A path's query string: "/p?email=..." -> "/p". Anchored on "/" so ordinary question
# marks in prose survive.
_QUERY_STRING = re.compile(r"(/[^\s?\"'\x1b]*)\?[^\s\"'\x1b]*")

# werkzeug's default prefix: '<client address> - - [<date>] '.
_WERKZEUG_PREFIX = re.compile(r"^\S+ - - \[[^\]]*\] ")


# Order and download links are bearer credentials: whoever reads a log line holding one could
# open the order, download the customer's data or erase it. The tag keeps 16 bits of a hash, so
# lines about one link can still be told apart, but it cannot be turned back into the link.
_TOKEN_PATH = re.compile(r"(/(?:orders|downloads)/)([A-Za-z0-9_-]{16,})")


def token_tag(token: str) -> str:
    return f"<tok:{hashlib.sha256(token.encode()).hexdigest()[:4]}>"


def _mask_ipv6(match: re.Match[str]) -> str:
    candidate = match.group(0)
    try:
        ipaddress.IPv6Address(candidate.split("%", 1)[0])
    except ValueError:
        return candidate
    return IP_MASK


def redact(text: str) -> str:
    """Mask email and IP addresses, and tag order and download tokens, in ``text``."""
    text = _TOKEN_PATH.sub(lambda m: m.group(1) + token_tag(m.group(2)), text)
    text = _EMAIL.sub(EMAIL_MASK, text)
    # IPv6 first so the IPv4 tail of "::ffff:10.0.0.1" goes with its address.
    text = _IPV6_CANDIDATE.sub(_mask_ipv6, text)
    return _IPV4.sub(IP_MASK, text)


def strip_query_strings(text: str) -> str:
    """Drop query strings from paths and URLs in ``text``."""
    return _QUERY_STRING.sub(r"\1", text)


class PersonalValue(Generic[T]):
    """Wraps a personal value so that no str/repr/format of it ever shows the value.

    ``reveal()`` returns the wrapped value for code that genuinely needs it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED


def mark_personal(value: T) -> PersonalValue[T]:
    return PersonalValue(value)


_default_formatter = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Renders each record, redacts it, and freezes the result into the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001
            # Bad format/args would otherwise raise here, in the caller's code. The args
            # cannot be rendered safely, so they are dropped.
            message = f"{record.msg} [unrenderable log arguments dropped]"
        record.msg = redact(message)
        record.args = ()

        if record.exc_info and not record.exc_text:
            record.exc_text = _default_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            # Formatters use exc_text when present, but some (JSON, error trackers) format
            # exc_info themselves, which would bring back the unredacted exception message.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the fully formatted line; use where a filter might not be installed."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _add_filter_once(target: logging.Filterer, flt: RedactingFilter) -> None:
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(flt)


_RECORD_FILTER = RedactingFilter()


def _redacting_factory(base):
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        _RECORD_FILTER.filter(record)
        return record

    make.shop_redacting = True  # type: ignore[attr-defined]
    return make


def install_record_redaction() -> None:
    """Redact every record when it is made, whichever logger, handler or formatter follows.

    Handler filters only cover handlers that existed when they were installed: Flask adds its
    own handler to the app logger on first use, gunicorn and test runners add theirs later.
    The record factory is where every record of the process passes. Idempotent.
    """
    current = logging.getLogRecordFactory()
    if not getattr(current, "shop_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(current))


def install_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Redact every record of the process (``install_record_redaction``), and attach a
    ``RedactingFilter`` to ``logger`` (default: root), its handlers and the root logger's
    handlers as a second line. Idempotent.
    """
    install_record_redaction()
    flt = RedactingFilter()
    root = logging.getLogger()
    target = root if logger is None else logger
    # A logger's own filters only see records logged *on that logger*; records logged on
    # child loggers ("shop.orders", "werkzeug", "gunicorn.error") propagate straight to
    # the ancestors' handlers, skipping the ancestors' logger filters. Handler filters see
    # every record they emit, so the handlers are what must carry the filter.
    _add_filter_once(target, flt)
    for handler in (*target.handlers, *root.handlers):
        _add_filter_once(handler, flt)
    # With no handler configured at all, WARNING+ records go to logging.lastResort.
    if logging.lastResort is not None:
        _add_filter_once(logging.lastResort, flt)
    return flt


# Libraries that log whole API payloads at DEBUG. Stripe's response bodies carry the
# customer's name, email and address (``customer_details``), which no pattern can redact.
PAYLOAD_LOGGERS = ("stripe",)


class _DropPayloads(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001
            return False
        return "body=" not in message and "customer_details" not in message


def silence_payload_loggers(names: tuple[str, ...] = PAYLOAD_LOGGERS) -> None:
    """Keep API payload dumps out of every log, whatever level the root logger is at.

    Idempotent. The logger level alone would be undone by ``logging.basicConfig`` or a
    test's ``caplog.set_level(..., logger=...)``; the filter is what guarantees it.
    """
    for name in names:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
        if not any(isinstance(f, _DropPayloads) for f in logger.filters):
            logger.addFilter(_DropPayloads())


# gunicorn's default minus %(h)s (client address), %(u)s (basic-auth user), %(f)s
# (referer), %(a)s (user agent) and %(r)s, whose request line includes the query string;
# %(U)s is the path alone. %(L)s is the request time in seconds.
access_log_format = '%(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'


_CONTROL_CHARS = str.maketrans(
    {c: rf"\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]} | {ord("\\"): r"\\"}
)


def _werkzeug_logger() -> logging.Logger:
    logger = logging.getLogger("werkzeug")
    # Same first-use setup werkzeug's own _log() does, so request lines are not silently
    # dropped when the server is started without run_simple (e.g. make_server).
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        logger.addHandler(logging.StreamHandler())
    return logger


class PrivateRequestHandler(WSGIRequestHandler):
    """Development-server request handler that logs ``"METHOD /path" status`` only.

    Only the log line changes: ``address_string`` is left alone because werkzeug also
    uses it for ``REMOTE_ADDR``, which the application may legitimately need.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        try:
            path = urlsplit(self.path).path or "/"
            line = redact(f"{self.command} {path}")
        except AttributeError:
            # No parsed path when the request line was malformed.
            line = "-"
        self.log("info", '"%s" %s', line.translate(_CONTROL_CHARS), code)

    def log(self, type: str, message: str, *args: Any) -> None:
        try:
            rendered = message % args if args else message
        except (TypeError, ValueError):
            rendered = message
        # log_error() messages (bad request lines) can quote the raw URL, query included.
        rendered = redact(strip_query_strings(rendered.rstrip()))
        getattr(_werkzeug_logger(), type)(rendered)


class _WerkzeugRequestFilter(logging.Filter):
    """Rewrites the stock ``WSGIRequestHandler`` lines: no address, no query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - see RedactingFilter.filter
            message = f"{record.msg} [unrenderable log arguments dropped]"
        message = _WERKZEUG_PREFIX.sub("", message)
        record.msg = redact(strip_query_strings(message))
        record.args = ()
        return True


def werkzeug_quiet() -> logging.Filter:
    """Make the development server's request log private, however it was started.

    ``flask run`` cannot be given a request handler, so this filters the "werkzeug"
    logger instead (werkzeug logs on that logger directly, so a logger filter applies).
    Idempotent; returns the installed filter. With ``app.run`` prefer
    ``request_handler=PrivateRequestHandler`` so the address is never formatted at all.
    """
    logger = logging.getLogger("werkzeug")
    for existing in logger.filters:
        if isinstance(existing, _WerkzeugRequestFilter):
            return existing
    flt = _WerkzeugRequestFilter()
    logger.addFilter(flt)
    return flt
