"""Admin forms (Flask-WTF: every POST carries the session-bound CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from shop.web.forms import ShopForm


class LoginForm(ShopForm):
    username = StringField(
        _l("User name"),
        validators=[InputRequired(), Length(max=64)],
        render_kw={"autocomplete": "username", "autocapitalize": "none"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[InputRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()
    submit = SubmitField(_l("Sign in"))


class SecondFactorForm(ShopForm):
    code = StringField(
        _l("Code from your authenticator app, or a recovery code"),
        validators=[InputRequired(), Length(max=64)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    next = HiddenField()
    submit = SubmitField(_l("Verify"))


class ActionForm(ShopForm):
    """A button-only form: logout, archive, start enrolment... (the CSRF token is the point)."""

    submit = SubmitField(_l("OK"))


class ConfirmTotpForm(ShopForm):
    code = StringField(
        _l("6-digit code from your authenticator app"),
        validators=[InputRequired(), Length(max=10)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Turn on two-factor authentication"))


class ReauthForm(ShopForm):
    """The password again (and, with two-factor authentication on, a code) for account changes."""

    password = PasswordField(
        _l("Your password"),
        validators=[InputRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    code = StringField(
        _l("Code from your authenticator app, or a recovery code"),
        validators=[Length(max=64)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Make new recovery codes"))


class DisableTotpForm(ReauthForm):
    submit = SubmitField(_l("Turn off two-factor authentication"))


class PasswordForm(ShopForm):
    current = PasswordField(
        _l("Current password"),
        validators=[InputRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    new = PasswordField(
        _l("New password (at least 12 characters)"),
        validators=[InputRequired(), Length(min=12, max=1024)],
        render_kw={"autocomplete": "new-password"},
    )
    code = StringField(
        _l("Code from your authenticator app, or a recovery code"),
        validators=[Length(max=64)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Change password"))


class ProductForm(ShopForm):
    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=200)])
    slug = StringField(
        _l("Address name (leave empty to derive it from the title)"),
        validators=[
            Optional(),
            Length(max=120),
            Regexp(
                r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
                message=_l("Use lower-case letters, digits and dashes."),
            ),
        ],
    )
    description = TextAreaField(_l("Description"), validators=[Length(max=20000)])
    kind = SelectField(
        _l("Kind"),
        choices=[
            SelectChoice("physical", "Physical (shipped)"),
            SelectChoice("digital", "Digital (download)"),
        ],
    )
    tax_class = SelectField(_l("Tax class"), coerce=int, validate_choice=True)
    position = IntegerField(
        _l("Position in the catalog"),
        default=0,
        validators=[Optional(), NumberRange(min=0, max=100000)],
    )
    submit = SubmitField(_l("Save product"))


class VariantForm(ShopForm):
    sku = StringField(
        _l("SKU"),
        validators=[
            InputRequired(),
            Length(max=64),
            Regexp(r"^[A-Za-z0-9._-]+$", message=_l("Letters, digits, dots, dashes, underscores.")),
        ],
    )
    label = StringField(_l("Label (e.g. size)"), validators=[Length(max=200)])
    price = StringField(
        _l("Price (tax included)"),
        validators=[InputRequired(), Length(max=20)],
        render_kw={"inputmode": "decimal"},
    )
    stock = IntegerField(_l("Stock"), validators=[Optional(), NumberRange(min=0, max=10**9)])
    unlimited = BooleanField(_l("Unlimited stock"))
    active = BooleanField(_l("On sale"), default=True)
    submit = SubmitField(_l("Save variant"))


class StockForm(ShopForm):
    stock = IntegerField(
        _l("New stock level"), validators=[Optional(), NumberRange(min=0, max=10**9)]
    )
    unlimited = BooleanField(_l("Unlimited"))
    reason = StringField(_l("Reason"), validators=[InputRequired(), Length(max=300)])
    submit = SubmitField(_l("Set stock"))


class ImageForm(ShopForm):
    image = FileField(_l("Image (JPEG, PNG, WebP or GIF)"), validators=[FileRequired()])
    alt = StringField(_l("Description for people who cannot see it"), validators=[Length(max=300)])
    submit = SubmitField(_l("Upload image"))


class DigitalFileForm(ShopForm):
    file = FileField(
        _l("File customers download (e.g. EPUB, PDF, ZIP)"), validators=[FileRequired()]
    )
    submit = SubmitField(_l("Upload file"))


class ShipForm(ShopForm):
    tracking = StringField(_l("Tracking reference (optional)"), validators=[Length(max=200)])
    submit = SubmitField(_l("Mark shipped"))


class RefundForm(ShopForm):
    amount = StringField(
        _l("Amount"),
        validators=[InputRequired(), Length(max=20)],
        render_kw={"inputmode": "decimal"},
    )
    reference = StringField(_l("Reference (e.g. transaction id)"), validators=[Length(max=200)])
    stock = RadioField(
        _l("Items not shipped yet"),
        default="restock",
        choices=[
            SelectChoice("restock", "Put them back in stock (this order will not ship them)"),
            SelectChoice("keep", "Keep them for this order (it still ships them)"),
            SelectChoice("write_off", "They are gone (damaged or lost): take them off the shelf"),
        ],
    )
    returned = BooleanField(_l("Shipped items came back: put them on the shelf again"))
    submit = SubmitField(_l("Refund"))


class ResolveForm(ShopForm):
    note = StringField(
        _l("What was done (kept in the order's history)"), validators=[Length(max=300)]
    )
    submit = SubmitField(_l("Mark as resolved"))


class CancelForm(ShopForm):
    reason = StringField(_l("Reason (shown to the customer)"), validators=[Length(max=300)])
    restock = BooleanField(
        _l("Put the items back in stock (untick if they are damaged or lost)"), default=True
    )
    submit = SubmitField(_l("Cancel order"))
