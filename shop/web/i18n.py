"""Languages of the storefront: which one a request gets, and links to the others.

The customer's choice is a path prefix (`/de/cart`), so it needs no cookie and no JavaScript
and a shared link opens in the same language. Without a prefix the browser's Accept-Language
picks among the shipped languages, else the store's SHOP_LOCALE. The prefix is moved into
SCRIPT_NAME before Flask sees the request: every `url_for` link and redirect then keeps it,
and no route is registered twice. The admin stays English.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict
from zoneinfo import ZoneInfo

from babel import Locale, localedata
from babel.dates import format_date
from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale, get_translations

from shop import i18n
from shop.config import Settings
from shop.money import format_btc, format_rate, format_sats

TRANSLATIONS_DIR = i18n.TRANSLATIONS_DIR
_PREFIX_KEY = "shop.language_prefix"
_ROOT_KEY = "shop.language_root"


class LanguagePrefix:
    """WSGI middleware: `/nl/checkout` is `/checkout` with Dutch chosen."""

    def __init__(self, app, languages: tuple[str, ...]):
        self.app, self.languages = app, frozenset(languages)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        first, slash, rest = path[1:].partition("/")
        script = environ.get("SCRIPT_NAME", "")
        environ = {**environ, _ROOT_KEY: script}  # the caller's dict stays as it sent it
        if path.startswith("/") and first in self.languages:
            environ[_PREFIX_KEY] = first
            environ["SCRIPT_NAME"] = f"{script}/{first}"
            environ["PATH_INFO"] = "/" + rest
        return self.app(environ, start_response)


def _locale_for(language: str, settings: Settings) -> str:
    """A full locale for numbers and dates: the store's own where it speaks that language,
    else the customer's region from Accept-Language (nl-BE), else the language alone."""
    store = settings.locale.replace("-", "_")
    if store.split("_")[0] == language:
        return store
    for tag, _quality in request.accept_languages:
        parts = tag.replace("_", "-").split("-")
        if parts[0].lower() == language and len(parts) > 1:
            candidate = f"{language}_{parts[1].upper()}"
            # Only regions Babel knows: a made-up "nl-XX" from a browser must not break the page.
            if parts[1].isalpha() and len(parts[1]) == 2 and localedata.exists(candidate):
                return candidate
    return language


def _accepted(languages: tuple[str, ...]) -> str | None:
    """The browser's most preferred language we ship; nl-BE counts as nl. (Werkzeug's
    best_match prefers any exact match, so "nl-BE, en;q=0.5" would give English.)"""
    for tag, quality in request.accept_languages:  # highest quality first
        primary = tag.replace("_", "-").split("-")[0].lower()
        if quality > 0 and primary in languages:
            return primary
    return None


def select_locale(settings: Settings, languages: tuple[str, ...]) -> str:
    if is_admin():
        return "en"
    chosen = request.environ.get(_PREFIX_KEY)
    if chosen is None:
        g.language_negotiated = True
        chosen = _accepted(languages) or i18n.language_of(settings.locale)
    return _locale_for(chosen, settings)


def is_admin() -> bool:
    return request.path == "/admin" or request.path.startswith("/admin/")


class LanguageLink(TypedDict):
    code: str
    href: str
    current: bool
    name: str


def language_links() -> list[LanguageLink]:
    """The current page in each shipped language (the footer's switch)."""
    root = request.environ.get(_ROOT_KEY, "")
    query = request.query_string.decode("latin-1")
    path = request.path + (f"?{query}" if query else "")
    if request.url_rule is not None and "GET" not in (request.url_rule.methods or ()):
        path = "/"  # a page shown after a refused form post: its address only takes posts
    current = language()
    return [
        {
            "code": code,
            "href": f"{root}/{code}{path}",
            "current": code == current,
            "name": (Locale.parse(code).get_display_name(code) or code).capitalize(),
        }
        for code in i18n.shipped_languages()
    ]


def language() -> str:
    """The language of the text of this response (what `<html lang>` says)."""
    return get_locale().language


def locale() -> str:
    """The request's locale for numbers, money and dates (de_DE, nl, en); the admin's text is
    English but its amounts look as the merchant's store writes them."""
    if has_request_context() and is_admin():
        return current_app.extensions["shop.settings"].locale
    return str(get_locale())


def _store_zone() -> str:
    return current_app.extensions["shop.settings"].timezone


def _localtime(moment: datetime, date: bool = True) -> str:
    return i18n.format_localtime(moment, _store_zone(), locale(), date)


def _day(moment: datetime) -> str:
    at = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return format_date(at.astimezone(ZoneInfo(_store_zone())), "medium", locale=locale())


def _country_name(code: str) -> str:
    return Locale.parse(locale()).territories.get(code, code)


def _vary(response: Response) -> Response:
    # The same address answers in several languages when no prefix chose one.
    if g.get("language_negotiated"):
        response.vary.add("Accept-Language")
    return response


def setup(app: Flask, settings: Settings) -> None:
    i18n.compile_catalogs()
    languages = i18n.shipped_languages()
    app.config["BABEL_DEFAULT_LOCALE"] = settings.locale
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    Babel(app, locale_selector=lambda: select_locale(settings, languages))
    i18n.set_provider(lambda: get_translations() if has_request_context() else None)
    app.wsgi_app = LanguagePrefix(app.wsgi_app, languages)  # type: ignore[method-assign]
    app.after_request(_vary)
    app.jinja_env.globals.update(html_lang=language, language_links=language_links)
    app.jinja_env.filters.update(
        localtime=_localtime,
        day=_day,
        country_name=_country_name,
        # Text whose id was marked elsewhere (N_) or stored, such as an order event's note:
        # translated when the catalog has it, shown as it is otherwise (never %-formatted).
        translated=lambda text: get_translations().gettext(text) if text else text,
        btc=lambda sats: format_btc(sats, locale()),
        sats=lambda sats: format_sats(sats, locale()),
        rate=lambda rate, currency: format_rate(rate, currency, locale()),
    )
