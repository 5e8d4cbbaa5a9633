"""Translations for code that runs without Flask (services, the email worker). Pure: no Flask.

Services mark customer-facing text with `lazy_gettext` (or `N_` for ids a view translates):
the text is looked up when it is shown, in the language of whoever reads it. That language is
the request's (the web layer installs a provider) or the one a job chose with `use_locale`
(an email goes out in the language of its order).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from gettext import NullTranslations
from pathlib import Path
from typing import TypeAlias
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import LazyProxy, Translations

log = logging.getLogger(__name__)

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
SOURCE_LANGUAGE = "en"
DOMAIN = "messages"

# What a person reads: plain text, or a lazy_gettext message translated when it is shown.
Text: TypeAlias = str | LazyProxy

_forced: ContextVar[NullTranslations | None] = ContextVar("shop_translations", default=None)
_provider: Callable[[], NullTranslations | None] = lambda: None


def N_(message: str) -> str:
    """Mark a message id for extraction; whoever shows it translates it."""
    return message


@lru_cache(maxsize=4)  # read per request and per email; catalogs come with a release
def shipped_languages(directory: Path = TRANSLATIONS_DIR) -> tuple[str, ...]:
    """English (the source) and every language with a catalog, English first."""
    found = sorted(
        p.name
        for p in directory.glob("*")
        if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
        or (p / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()
    )
    return (SOURCE_LANGUAGE, *(lang for lang in found if lang != SOURCE_LANGUAGE))


def compile_catalogs(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Write messages.mo next to each messages.po that is newer; returns what was written.

    The wheel build runs this (hatch_build.py); a checkout compiles on first use, so the
    compiled files never need to be committed.
    """
    written = []
    for po in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = po.with_suffix(".mo")
        if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        tmp = mo.with_suffix(f".mo.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as f:
                write_mo(f, catalog, use_fuzzy=False)
            tmp.replace(mo)  # atomic: a process reading the catalog never sees half a file
        except OSError as exc:
            # An installed package may be read-only: its wheel carries compiled catalogs.
            log.warning("cannot compile %s: %s", po, exc)
            continue
        written.append(mo)
    return written


@lru_cache(maxsize=32)
def translations_for(locale: str) -> NullTranslations:
    """The catalog of `locale` (de_DE falls back to de), English when none is shipped."""
    if locale.split("_")[0] == SOURCE_LANGUAGE:
        return NullTranslations()
    compile_catalogs()
    return Translations.load(str(TRANSLATIONS_DIR), [locale], DOMAIN)


@lru_cache(maxsize=64)
def babel_locale(identifier: str) -> Locale:
    """Babel's Locale for an identifier, parsed once (it is immutable once made)."""
    return Locale.parse(identifier)


@lru_cache(maxsize=256)  # the store's locale on every request, an order's on every email
def language_of(locale: str | None, default: str = SOURCE_LANGUAGE) -> str:
    """The shipped language that text for `locale` is written in."""
    if locale:
        try:
            language = Locale.parse(locale).language
        except (ValueError, TypeError):
            language = ""
        if language in shipped_languages():
            return language
    return default


def set_provider(provider: Callable[[], NullTranslations | None]) -> None:
    """The web layer's translations for the current request (None outside a request)."""
    global _provider
    _provider = provider


def current() -> NullTranslations:
    return _forced.get() or _provider() or NullTranslations()


@contextmanager
def use_locale(locale: str) -> Iterator[NullTranslations]:
    """Translate in `locale` inside the block (the worker rendering an order's email)."""
    translations = translations_for(locale)
    token = _forced.set(translations)
    try:
        yield translations
    finally:
        _forced.reset(token)


def gettext(message: str, **variables: object) -> str:
    text = current().gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    text = current().ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def lazy_gettext(message: str, **variables: object) -> LazyProxy:
    """Text translated when shown, not when made (services run before the language is known
    to them, and a cached value may be shown to customers of several languages)."""
    return LazyProxy(gettext, message, enable_cache=False, **variables)


def format_localtime(moment: datetime, timezone: str, locale: str, date: bool = True) -> str:
    """A stored time in the store's time zone (SHOP_TIMEZONE), written the reader's way, with
    the zone's abbreviation so nobody has to guess ("02.12.2026, 09:30 CET" in German)."""
    at = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(ZoneInfo(timezone))
    text = format_time(at, "short", tzinfo=at.tzinfo, locale=locale)
    if date:
        # str(): babel declares a DateTimePattern, but CLDR's datetime formats are plain strings.
        text = (
            str(get_datetime_format("medium", locale=locale))
            .replace("'", "")
            .format(text, format_date(at, "medium", locale=locale))
        )
    return f"{text} {at.tzname()}"
