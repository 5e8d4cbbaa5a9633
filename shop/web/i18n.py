"""Languages of the storefront: which one a request gets, and links to the others.

The customer's choice is a path prefix (`/de/cart`), so it needs no cookie and no JavaScript
and a shared link opens in the same language. Without a prefix the browser's Accept-Language
picks among the shipped languages, else the store's SHOP_LOCALE. The prefix is moved into
SCRIPT_NAME before Flask sees the request: every `url_for` link and redirect then keeps it,
and no route is registered twice. The admin stays English.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from gettext import NullTranslations
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from babel import localedata
from babel.dates import format_date
from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale, get_translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from shop import i18n
from shop.config import Settings
from shop.money import format_btc, format_rate, format_sats

TRANSLATIONS_DIR = i18n.TRANSLATIONS_DIR
_PREFIX_KEY = "shop.language_prefix"
_ROOT_KEY = "shop.language_root"
_READERS_KEY = "shop.language_readers"
# Bounds the translated fixed strings kept per language, should a template ever translate data.
_FIXED_LIMIT = 2000
_FRAGMENTS_KEY = "shop.language_fragments"
_FRAGMENTS_LIMIT = 256


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


class LanguageLink(NamedTuple):
    # A tuple, not a dict: Jinja reads `link.href` as an attribute first, and a dict answers
    # that with an exception before the key is tried (20 a page).
    code: str
    href: str
    current: bool
    name: str


def language_links() -> list[LanguageLink]:
    """The current page in each shipped language (the footer's switch)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    root = req.environ.get(_ROOT_KEY, "")
    query = req.query_string.decode("latin-1")
    path = req.path + (f"?{query}" if query else "")
    if req.url_rule is not None and "GET" not in (req.url_rule.methods or ()):
        path = "/"  # a page shown after a refused form post: its address only takes posts
    current = _reader().language
    return [
        LanguageLink(code, f"{root}/{code}{path}", code == current, name)
        for code, name in _display_names(i18n.shipped_languages())
    ]


@lru_cache(maxsize=4)
def _display_names(languages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each language's name in itself ("Deutsch"): the same on every page."""
    return tuple(
        (code, (i18n.babel_locale(code).get_display_name(code) or code).capitalize())
        for code in languages
    )


def language() -> str:
    """The language of the text of this response (what `<html lang>` says)."""
    return _reader().language


def locale() -> str:
    """The request's locale for numbers, money and dates (de_DE, nl, en); the admin's text is
    English but its amounts look as the merchant's store writes them."""
    if not has_request_context():
        return str(get_locale())
    try:
        return g._shop_number_locale
    except AttributeError:
        pass
    if is_admin():
        found = current_app.extensions["shop.settings"].locale
    else:
        found = _reader().locale
    g._shop_number_locale = found
    return found


@dataclass(frozen=True)
class _Reader:
    """What depends only on the request's locale, made once per locale and app: Flask-Babel
    resolves the domain, the locale and its name anew on every gettext call (a page has 20),
    which with the footer's language names doubled the CPU of a cached page."""

    locale: str
    language: str
    translations: NullTranslations
    template_functions: dict[str, Callable[..., Any]]


def _reader() -> _Reader:
    """The request's reader. Kept on `g` beside Flask-Babel's own cache of the locale, so
    both are forgotten together."""
    try:
        return g._shop_reader
    except AttributeError:
        pass
    current = get_locale()
    readers: dict[str, _Reader] = current_app.extensions[_READERS_KEY]
    key = str(current)
    reader = readers.get(key)
    if reader is None:
        translations = get_translations()  # Flask-Babel's catalog for `current`, as it loads it
        functions = _template_gettext(translations)
        reader = readers.setdefault(key, _Reader(key, current.language, translations, functions))
    g._shop_reader = reader
    return reader


def _template_gettext(translations: NullTranslations) -> dict[str, Callable[..., Any]]:
    """Jinja's newstyle gettext and ngettext (see jinja2.ext._make_new_gettext: Markup when
    autoescaping, always %-formatted) bound to one catalog. Flask-Babel's, installed as
    globals, look the catalog up per string and go through three template calls for `_`."""
    ugettext, ungettext = translations.ugettext, translations.ungettext  # type: ignore[attr-defined]
    # A page's fixed strings ("Shop", "Imprint") come out the same every time: kept as made.
    fixed: dict[str, Markup] = {}

    @pass_context
    def gettext(__context: Context, __string: str, **variables: Any) -> str:
        autoescape = __context.eval_ctx.autoescape
        if autoescape and not variables:
            try:
                return fixed[__string]
            except KeyError:
                pass
        rv = ugettext(__string)
        if autoescape:
            rv = Markup(rv)
        rv = rv % variables
        if autoescape and not variables and len(fixed) < _FIXED_LIMIT:
            fixed[__string] = rv
        return rv

    @pass_context
    def ngettext(
        __context: Context, __singular: str, __plural: str, __num: int, **variables: Any
    ) -> str:
        variables.setdefault("num", __num)
        rv = ungettext(__singular, __plural, __num)
        if __context.eval_ctx.autoescape:
            rv = Markup(rv)
        return rv % variables

    return {"gettext": gettext, "_": gettext, "ngettext": ngettext}


@pass_context
def _fixed(context: Context, name: str, *depends_on: Any, caller: Callable[[], str]) -> str:
    """`{% call fixed("footer", store.store_name) %}…{% endcall %}`: the body is rendered once
    per language and address prefix (the links in it) for the values named after the name,
    and kept. Nothing from the cart, the session or the form token may go inside."""
    if not has_request_context():
        return caller()
    fragments: dict[tuple[Any, ...], str] = current_app.extensions[_FRAGMENTS_KEY]
    key = (context.name, name, _reader().locale, request.script_root, *depends_on)
    try:
        return fragments[key]
    except KeyError:
        pass
    if len(fragments) >= _FRAGMENTS_LIMIT:  # mount points and store names change rarely
        fragments.clear()
    fragments[key] = text = caller()
    return text


def _template_context() -> dict[str, Callable[..., Any]]:
    # Names in a template's context win over the environment's globals; macros imported
    # without context still use Flask-Babel's globals, which give the same text.
    return _reader().template_functions if has_request_context() else {}


def _store_zone() -> str:
    return current_app.extensions["shop.settings"].timezone


def _localtime(moment: datetime, date: bool = True) -> str:
    return i18n.format_localtime(moment, _store_zone(), locale(), date)


def _day(moment: datetime) -> str:
    at = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return format_date(at.astimezone(ZoneInfo(_store_zone())), "medium", locale=locale())


def _country_name(code: str) -> str:
    return i18n.babel_locale(locale()).territories.get(code, code)


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
    # A Locale made once per identifier: Flask-Babel would parse the string on every request.
    Babel(app, locale_selector=lambda: i18n.babel_locale(select_locale(settings, languages)))
    app.extensions[_READERS_KEY] = {}
    app.extensions[_FRAGMENTS_KEY] = {}
    app.context_processor(_template_context)
    i18n.set_provider(lambda: _reader().translations if has_request_context() else None)
    app.wsgi_app = LanguagePrefix(app.wsgi_app, languages)  # type: ignore[method-assign]
    app.after_request(_vary)
    app.jinja_env.globals.update(html_lang=language, language_links=language_links, fixed=_fixed)
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
