"""The catalogs against a fresh extraction: every customer-facing message is translated.

Extraction runs here with Babel exactly as the README's `pybabel extract` does (babel.cfg, the
same keywords), so a new `_()` in a template or view without a translation fails this test,
naming the message and where it is used.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from shop import i18n

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "shop" / "translations"
# As in the README's extract command: lazy_gettext and its short name mark messages too.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
# The admin may stay English (issue 16): messages used only there need no translation.
ADMIN_ONLY = (
    "templates/admin/",
    "shop/admin/",
    "shop/payments/bitcoin/admin_views.py",
    "templates/payments/bitcoin_admin.html",
)
LANGUAGES = [lang for lang in i18n.shipped_languages() if lang != i18n.SOURCE_LANGUAGE]


def _extract() -> Catalog:
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    return _extract()


def _customer_facing(message) -> bool:
    return any(not path.startswith(ADMIN_ONLY) for path, _line in message.locations)


def _where(message) -> str:
    return ", ".join(f"{path}:{line}" for path, line in message.locations[:3])


def test_german_dutch_and_french_are_shipped():
    assert {"de", "nl", "fr"} <= set(LANGUAGES)


def test_the_checked_in_template_is_current(extracted):
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    stale = [f"{m.id!r} ({_where(m)})" for m in extracted if m.id and m.id not in template]
    assert not stale, "run pybabel extract (README, Languages):\n" + "\n".join(stale)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_customer_facing_message_is_translated(extracted, lang):
    catalog = read_po((TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb"), locale=lang)
    problems = []
    for message in extracted:
        if not message.id or not _customer_facing(message):
            continue
        found = catalog.get(message.id, message.context)
        strings = (
            []
            if found is None
            else list(found.string)
            if isinstance(found.string, tuple)
            else [found.string]
        )
        if found is None:
            problems.append(f"missing {message.id!r} ({_where(message)})")
        elif found.fuzzy:
            problems.append(f"fuzzy {message.id!r}")
        elif not strings or not all(strings):
            problems.append(f"untranslated {message.id!r} ({_where(message)})")
    assert not problems, f"{lang}: run pybabel update and translate:\n" + "\n".join(problems)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_translations_keep_the_placeholders(lang):
    """A translation that drops or renames %(name)s would fail at run time, not here."""
    catalog = read_po((TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb"), locale=lang)
    errors = [
        f"{message.id!r}: {'; '.join(map(str, errs))}" for message, errs in catalog.check() if errs
    ]
    assert not errors, "\n".join(errors)


def test_compiled_catalogs_follow_their_sources(tmp_path):
    """What a checkout compiles on first use (the wheel's hook does the same)."""
    po_dir = tmp_path / "de" / "LC_MESSAGES"
    po_dir.mkdir(parents=True)
    (po_dir / "messages.po").write_bytes(
        (TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.po").read_bytes()
    )
    assert i18n.compile_catalogs(tmp_path) == [po_dir / "messages.mo"]
    assert i18n.compile_catalogs(tmp_path) == []  # up to date: nothing to do
    from babel.support import Translations

    german = Translations.load(str(tmp_path), ["de_DE"])
    assert german.gettext("Your cart") == "Ihr Warenkorb"
