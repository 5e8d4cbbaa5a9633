"""Admin forms (Flask-WTF: every POST carries the session-bound CSRF token)."""

from __future__ import annotations

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
    username = StringField("User name", validators=[InputRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none"})
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    next = HiddenField()
    submit = SubmitField("Sign in")


class SecondFactorForm(ShopForm):
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[InputRequired(), Length(max=64)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
    next = HiddenField()
    submit = SubmitField("Verify")


class ActionForm(ShopForm):
    """A button-only form: logout, archive, start enrolment... (the CSRF token is the point)."""

    submit = SubmitField("OK")


class ConfirmTotpForm(ShopForm):
    code = StringField("6-digit code from your authenticator app",
                       validators=[InputRequired(), Length(max=10)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
    submit = SubmitField("Turn on two-factor authentication")


class ReauthForm(ShopForm):
    """The password again (and, with two-factor authentication on, a code) for account changes."""

    password = PasswordField("Your password", validators=[InputRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[Length(max=64)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
    submit = SubmitField("Make new recovery codes")


class DisableTotpForm(ReauthForm):
    submit = SubmitField("Turn off two-factor authentication")


class PasswordForm(ShopForm):
    current = PasswordField("Current password", validators=[InputRequired(), Length(max=1024)],
                            render_kw={"autocomplete": "current-password"})
    new = PasswordField("New password (at least 12 characters)",
                        validators=[InputRequired(), Length(min=12, max=1024)],
                        render_kw={"autocomplete": "new-password"})
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[Length(max=64)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
    submit = SubmitField("Change password")


class ProductForm(ShopForm):
    title = StringField("Title", validators=[InputRequired(), Length(max=200)])
    slug = StringField("Address name (leave empty to derive it from the title)",
                       validators=[Optional(), Length(max=120),
                                   Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
                                          message="Use lower-case letters, digits and dashes.")])
    description = TextAreaField("Description", validators=[Length(max=20000)])
    kind = SelectField("Kind", choices=[SelectChoice("physical", "Physical (shipped)"),
                                        SelectChoice("digital", "Digital (download)")])
    tax_class = SelectField("Tax class", coerce=int, validate_choice=True)
    position = IntegerField("Position in the catalog", default=0,
                            validators=[Optional(), NumberRange(min=0, max=100000)])
    submit = SubmitField("Save product")


class VariantForm(ShopForm):
    sku = StringField("SKU", validators=[InputRequired(), Length(max=64),
                                         Regexp(r"^[A-Za-z0-9._-]+$",
                                                message="Letters, digits, dots, dashes, underscores.")])
    label = StringField("Label (e.g. size)", validators=[Length(max=200)])
    price = StringField("Price (tax included)", validators=[InputRequired(), Length(max=20)],
                        render_kw={"inputmode": "decimal"})
    stock = IntegerField("Stock", validators=[Optional(), NumberRange(min=0, max=10**9)])
    unlimited = BooleanField("Unlimited stock")
    active = BooleanField("On sale", default=True)
    submit = SubmitField("Save variant")


class StockForm(ShopForm):
    stock = IntegerField("New stock level", validators=[Optional(), NumberRange(min=0, max=10**9)])
    unlimited = BooleanField("Unlimited")
    reason = StringField("Reason", validators=[InputRequired(), Length(max=300)])
    submit = SubmitField("Set stock")


class ImageForm(ShopForm):
    image = FileField("Image (JPEG, PNG, WebP or GIF)", validators=[FileRequired()])
    alt = StringField("Description for people who cannot see it", validators=[Length(max=300)])
    submit = SubmitField("Upload image")


class DigitalFileForm(ShopForm):
    file = FileField("File customers download (e.g. EPUB, PDF, ZIP)", validators=[FileRequired()])
    submit = SubmitField("Upload file")


class ShipForm(ShopForm):
    tracking = StringField("Tracking reference (optional)", validators=[Length(max=200)])
    submit = SubmitField("Mark shipped")


class RefundForm(ShopForm):
    amount = StringField("Amount", validators=[InputRequired(), Length(max=20)],
                         render_kw={"inputmode": "decimal"})
    reference = StringField("Reference (e.g. transaction id)", validators=[Length(max=200)])
    stock = RadioField("Items not shipped yet", default="restock", choices=[
        SelectChoice("restock", "Put them back in stock (this order will not ship them)"),
        SelectChoice("keep", "Keep them for this order (it still ships them)"),
        SelectChoice("write_off", "They are gone (damaged or lost): take them off the shelf"),
    ])
    returned = BooleanField("Shipped items came back: put them on the shelf again")
    submit = SubmitField("Refund")


class ResolveForm(ShopForm):
    note = StringField("What was done (kept in the order's history)", validators=[Length(max=300)])
    submit = SubmitField("Mark as resolved")


class CancelForm(ShopForm):
    reason = StringField("Reason (shown to the customer)", validators=[Length(max=300)])
    restock = BooleanField("Put the items back in stock (untick if they are damaged or lost)",
                           default=True)
    submit = SubmitField("Cancel order")
