"""ShopForm writes the same controls as WTForms' own widgets, only faster."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import (
    EmailField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import Email, InputRequired, Length, Optional

from shop.web.forms import ShopForm

FIELDS = {
    "name": StringField(
        "Name", validators=[InputRequired(), Length(max=200)], render_kw={"autocomplete": "name"}
    ),
    "email": EmailField("Email", validators=[Optional(), Email(), Length(min=3, max=254)]),
    "token": HiddenField(),
    "country": SelectField(
        "Country", validators=[InputRequired()], render_kw={"autocomplete": "country"}
    ),
    "rate": RadioField("Shipping", coerce=int, validators=[InputRequired()]),
    "quantity": IntegerField("Quantity", default=1),
    "notes": TextAreaField("Notes"),
    "submit": SubmitField("Place <order> & pay"),
}


def _forms():
    return type("Fast", (ShopForm,), dict(FIELDS)), type("Plain", (FlaskForm,), dict(FIELDS))


CALLS = [
    ("name", {}),
    ("name", {"aria-describedby": "name-hint name-error", "aria-invalid": "true"}),
    ("name", {"id": "other", "class_": "wide", "data_x": "1"}),
    ("email", {"aria-required": "true"}),
    ("token", {}),
    ("country", {"aria-required": "true"}),
    ("quantity", {"min": 1}),
    ("notes", {"rows": 3}),
    ("submit", {"class": "primary"}),
    ("submit", {"id": False, "value": "Other"}),
    ("csrf_token", {}),
]


@pytest.mark.parametrize(
    "formdata",
    [
        None,
        {
            "name": 'Anne "A" <b>',
            "email": "x@example.org",
            "token": "t&1",
            "country": "FR",
            "rate": "2",
            "quantity": "7",
            "notes": "<hi>",
        },
    ],
)
def test_fast_controls_match_wtforms_markup(formdata):
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 32)
    fast_form, plain_form = _forms()
    with app.test_request_context(method="POST" if formdata else "GET", data=formdata):
        forms = [
            cls(formdata=MultiDict(formdata) if formdata else None)
            for cls in (fast_form, plain_form)
        ]
        for form in forms:
            form.country.choices = [
                SelectChoice("DE", "Germany"),
                SelectChoice("FR", "France & <Monaco>"),
            ]
            form.rate.choices = [SelectChoice(1, "Standard"), SelectChoice(2, "Express")]
            if not formdata:
                form.country.data, form.rate.data = "DE", 1
        fast, plain = forms
        for name, kwargs in CALLS:
            assert str(fast[name](**kwargs)) == str(plain[name](**kwargs)), name
        for fast_option, plain_option in zip(fast.rate, plain.rate, strict=True):
            assert str(fast_option()) == str(plain_option())


def test_fast_controls_do_not_call_the_widgets(monkeypatch):
    import wtforms.widgets.core as core

    def boom(**_):
        raise AssertionError("WTForms widget rendering was used")

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 32)
    fast_form, _ = _forms()
    with app.test_request_context():
        form = fast_form()
        form.country.choices = [SelectChoice("DE", "Germany")]
        form.rate.choices = [SelectChoice(1, "Standard")]
        monkeypatch.setattr(core.Input, "html_params", staticmethod(boom))
        monkeypatch.setattr(core, "html_params", boom)
        for name in ("name", "email", "token", "country", "submit", "csrf_token"):
            assert form[name]().startswith(("<input ", "<select ")), name
        assert next(iter(form.rate))().startswith("<input ")
        with pytest.raises(AssertionError):
            form.quantity()  # not a widget the fast path knows: WTForms renders it
