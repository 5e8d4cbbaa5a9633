"""The base of every form: Flask-WTF's CSRF protection, with controls written directly.

WTForms' widgets gather attributes through ``dir()`` on the field's flags and ``html_params``
on every call; on the checkout page that was the largest single cost. For the plain widgets the
customer pages use (text, email, hidden, radio, submit, single select) ``render_field`` writes
the same markup (same attributes, same escaping, sorted like ``html_params``) directly; any
other widget, or a subclass of one of these, still renders itself.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import gettext as _
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import Field, ValidationError, widgets
from wtforms.widgets.core import clean_key

# C0 and C1 controls (NUL, CR/LF, ESC, ...), DEL, and the bidi overrides and isolates that make a
# name or address display as something other than what it is.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def has_control_characters(text: str | None) -> bool:
    return text is not None and CONTROL_CHARACTERS.search(text) is not None


class NoControlCharacters:
    """Refuses what would corrupt a shipping label or a log line, with a message that says why."""

    def __call__(self, form, field) -> None:
        if isinstance(field.data, str) and has_control_characters(field.data):
            raise ValidationError(
                _(
                    "%(field)s contains control or direction characters (such "
                    "as a line break); please type it again without them.",
                    field=field.label.text,
                )
            )


_INPUTS = frozenset(
    {
        widgets.TextInput,
        widgets.EmailInput,
        widgets.HiddenInput,
        widgets.RadioInput,
        widgets.SubmitInput,
    }
)


def _params(attrs: dict[str, Any]) -> str:
    out = []
    for key, value in sorted(attrs.items()):
        if value is True:
            out.append(key)
        elif value is not False:
            out.append(f'{key}="{escape(value)}"')
    return " ".join(out)


def _validation_attrs(field: Field) -> dict[str, Any]:
    flags, found = field.flags, {}
    for name in field.widget.validation_attrs:
        value = getattr(flags, name, None)
        if value is not None:
            found[name] = value() if callable(value) else value
    return found


def _option(choice: Any) -> str:
    value = str(choice.value) if isinstance(choice.value, bool) else choice.value
    attrs = {"value": value, **(choice.render_kw or {}), "selected": choice.selected}
    return f"<option {_params(attrs)}>{escape(choice.label or choice.value)}</option>"


def render_field(field: Field, render_kw: dict[str, Any]) -> Markup:
    """What ``field.widget(field, **render_kw)`` returns, after WTForms' DefaultMeta merge."""
    attrs = {clean_key(k): v for k, v in (field.render_kw or {}).items()}
    attrs.update((clean_key(k), v) for k, v in render_kw.items())
    widget = field.widget
    kind = type(widget)
    if kind in _INPUTS and getattr(field, "_datalist", None) is None:
        if kind is widgets.SubmitInput:
            attrs.setdefault("value", field.label.text)
        elif kind is widgets.RadioInput and field.checked:
            attrs.setdefault("checked", True)
        merged = {
            **_validation_attrs(field),
            "id": field.id,
            "type": widget.input_type,
            "value": field._value(),
            **attrs,
            "name": field.name,
        }
        return Markup(f"<input {_params(merged)}>")
    if kind is widgets.Select and not widget.multiple and not field.has_groups():
        merged = {**_validation_attrs(field), "id": field.id, **attrs, "name": field.name}
        options = "".join(_option(choice) for choice in field.iter_choices())
        return Markup(f"<select {_params(merged)}>{options}</select>")
    return widget(field, **attrs)


class ShopForm(FlaskForm):
    class Meta:
        def render_field(self, field: Field, render_kw: dict[str, Any]) -> Markup:
            return render_field(field, render_kw)
