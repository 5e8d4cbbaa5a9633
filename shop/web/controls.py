"""Form controls for the hot customer pages, written directly.

WTForms' widgets gather attributes through ``dir()`` on the field's flags and ``html_params``
on every call, which the checkout profile showed as the largest part of that page. For plain
text-like inputs and single-choice selects this writes the same markup (same attributes, same
escaping, sorted like ``html_params``); every other widget still renders itself.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from wtforms import Field, widgets

_INPUTS = (widgets.TextInput, widgets.EmailInput)


def _params(attrs: dict[str, Any]) -> str:
    out = []
    for key, value in sorted(attrs.items()):
        if value is True:
            out.append(key)
        elif value is not False:
            out.append(f'{key}="{escape(value)}"')
    return " ".join(out)


def _validation_attrs(field: Field) -> dict[str, Any]:
    flags = field.flags
    return {name: getattr(flags, name) for name in field.widget.validation_attrs
            if getattr(flags, name, None) is not None}


def render_control(field: Field, attrs: dict[str, Any]) -> Markup:
    widget = type(field.widget)
    if widget in _INPUTS:
        merged = {**_validation_attrs(field), "id": field.id, "type": field.widget.input_type,
                  "value": field._value(), **(field.render_kw or {}), **attrs, "name": field.name}
        return Markup(f"<input {_params(merged)}>")
    if widget is widgets.Select and not field.widget.multiple and not field.has_groups():
        merged = {**_validation_attrs(field), "id": field.id, **(field.render_kw or {}), **attrs,
                  "name": field.name}
        options = "".join(
            f'<option {_params({"value": c.value, **(c.render_kw or {}), "selected": c.selected})}>'
            f"{escape(c.label or c.value)}</option>"
            for c in field.iter_choices()
        )
        return Markup(f"<select {_params(merged)}>{options}</select>")
    return field(**attrs)
