"""Settings: defaults < SHOP_* environment < explicit overrides (tests), validated at start-up.

Each feature validates its own section in a settings module of its own (shop/tax/settings.py,
shop/payments/bitcoin/rate_settings.py, ...) that imports this module only for type checking;
`_validate` composes them, so nothing this module imports imports it back.

Nothing here is read at import time: `load_settings()` is called by the app factory and the CLI,
so every test can build an isolated app from its own settings.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies

from shop.mail import settings as mail_settings
from shop.money import BTC
from shop.payments.bitcoin import rate_settings
from shop.payments.bitcoin import settings as bitcoin_settings
from shop.payments.lightning import settings as lightning_settings
from shop.payments.stripe import settings as stripe_settings
from shop.privacy import settings as privacy_settings
from shop.tax import settings as tax_settings

# Values that have been published somewhere (docs, examples) and so are no secret at all.
KNOWN_UNSAFE_SECRETS = frozenset({"", "dev", "change-me", "changeme", "secret", "development"})
ENVIRONMENTS = ("development", "production")


class ConfigError(Exception):
    """One or more settings are invalid; the message lists every problem so one restart fixes all."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    instance_path: Path = Path("instance")
    database_url: str = ""
    secret_key: str = ""
    store_name: str = "Demo Shop"
    currency: str = "EUR"
    country: str = "DE"
    locale: str = "en"
    # The store's time zone (IANA name): times customers see are shown in it, with its name.
    timezone: str = "Europe/Berlin"
    # Minutes an unpaid order keeps its stock reserved.
    order_expiry_minutes: int = 30
    # The clearly labelled pretend payment method of the demo; refused in production.
    demo_payments: bool = False
    products_per_page: int = 12
    # Seconds the catalog listing and product pages may be served from memory (0: never).
    catalog_cache_seconds: int = field(default=10, metadata={"min": 0})
    # Absolute base URL (scheme and host) for links that leave the request context,
    # e.g. payment-provider return URLs; empty means "derive from the request".
    base_url: str = ""
    worker_interval_seconds: float = 5.0
    # Log lines of `shop worker`: "text" (key=value) or "json" (one object per line).
    log_format: str = "text"
    # BTC exchange rates (shop/payments/bitcoin/rates.py): public tickers fetched by the worker,
    # optionally through a SOCKS5 proxy such as Tor (socks5h://127.0.0.1:9050).
    http_proxy: str = ""
    rate_providers: str = "kraken,bitstamp,coinbase,gemini"  # empty: never fetch rates
    rate_max_age_seconds: int = 600
    rate_max_deviation_bp: int = 200
    rate_min_sources: int = 2
    rate_refresh_seconds: int = 120
    # Card payments through Stripe Checkout; without both keys the card option is hidden.
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    # Empty means Stripe's own API; tests (or stripe-mock) point it elsewhere.
    stripe_api_base: str = ""
    # Where Checkout's hosted page lives: the form that starts a card payment is redirected
    # there, so the Content-Security-Policy's form-action must allow it.
    stripe_checkout_origin: str = "https://checkout.stripe.com"
    stripe_timeout_seconds: float = 10.0
    # A card payment that settles later (SEPA Debit and other delayed methods) holds its order,
    # stock and personal data at most this long while Stripe reports it as processing.
    card_processing_hold_days: int = 14
    # Total seconds all outgoing calls (Stripe, ...) may take while one web request waits,
    # retries included. Must stay below the web server's worker timeout (checked when gunicorn
    # starts with shop/gunicorn_conf.py), so a hanging provider never gets a worker killed.
    request_budget_seconds: float = 8.0
    # Reverse proxies in front of the app (nginx: 1) whose X-Forwarded-For is believed, so the
    # sign-in throttle tells clients apart instead of seeing one proxy address for everyone.
    trusted_proxies: int = field(default=0, metadata={"min": 0})
    # Master key wrapping the per-order data keys (urlsafe base64 of 32 bytes); outside
    # production a generated one is kept in the instance folder. Old keys, comma separated,
    # stay readable during a rotation (`shop privacy rotate-key`).
    data_key: str = ""
    data_key_old: str = ""
    # Folder of the epoch keys that wrap the per-order data keys (shop/privacy/epochs.py); empty
    # means <instance>/keyring. Outside the database and its backups by design; every app server
    # and worker must see the same folder.
    keyring_path: str = ""
    # Personal data of unpaid/expired/cancelled orders is erased this long after they ended,
    # that of fulfilled orders after the return window; the bookkeeping ledger is kept longer.
    retention_unpaid_hours: int = 24
    retention_fulfilled_days: int = 30
    ledger_retention_years: int = 7
    # Merchant admin: signed out after this long without a request, and this long after sign-in.
    admin_idle_minutes: int = 30
    admin_session_hours: int = 12
    # Largest upload in the admin (product images, digital goods), in megabytes.
    admin_upload_mb: int = 20
    # Customer emails: smtp://user:pass@host:port (smtp+starttls://, smtps:// for TLS); empty
    # means no email is sent. mail_from is the sender address, shown with the store's name.
    smtp_url: str = ""
    mail_from: str = ""
    # VAT (shop/tax/rates.py, docs/TAX.md). "origin": under the EU's €10,000 cross-border
    # threshold, SHOP_COUNTRY's VAT on goods sent anywhere in the EU; "oss": registered for the
    # One-Stop-Shop, the destination's VAT for consumers in other EU countries. Digital goods
    # are always taxed where the customer is; exports outside the EU carry no VAT.
    vat_scheme: str = "origin"
    # Prices include VAT. "gross": the shown price is the same in every country (the VAT share
    # changes); "net": the price before VAT is, the gross follows the destination's rate.
    vat_fixed_price: str = "gross"
    # Digital content delivered at once needs the customer's consent to immediate delivery
    # (and so losing the right of withdrawal). Without it: "refuse" the order, or "delay" the
    # download until the 14-day withdrawal period has ended.
    digital_without_consent: str = "refuse"
    # Digital goods: a paid order's download link works this many days, this many times.
    download_days: int = 7
    download_count: int = 5
    # Bitcoin (shop/payments/bitcoin/): the merchant's watch-only descriptor and their own node.
    bitcoin_descriptor: str = ""
    bitcoin_network: str = "main"
    bitcoin_rpc_url: str = ""
    bitcoin_rpc_cookie: str = ""
    bitcoin_zmq_block: str = ""
    bitcoin_zmq_tx: str = ""
    bitcoin_zmq_sequence: str = ""
    bitcoin_payment_window_minutes: int = 30
    bitcoin_confirmations: int = 1
    # Accept unconfirmed payments up to this many sats (0: never), on the rules in invoice.decide,
    # once they stayed unchallenged in the mempool for the settling time.
    bitcoin_zero_conf_max_sats: int = field(default=0, metadata={"min": 0})
    bitcoin_zero_conf_settle_seconds: int = field(default=60, metadata={"min": 0})
    # An invoice counts as paid when short by at most the larger of these two.
    bitcoin_underpayment_tolerance_percent: str = "0"
    bitcoin_underpayment_tolerance_sats: int = field(default=0, metadata={"min": 0})
    bitcoin_late_payment_days: int = field(default=7, metadata={"min": 0})
    bitcoin_gap_limit: int = 20
    bitcoin_poll_seconds: float = 30.0
    # The demo's simulated chain (no node, regtest keys); refused in production.
    bitcoin_simulated: bool = False
    # Lightning (shop/payments/lightning/): the merchant's own LND (REST) or Core Lightning node.
    lightning_lnd_url: str = ""
    lightning_lnd_macaroon: str = ""
    lightning_lnd_cert: str = ""
    lightning_cln_rpc: str = ""
    # Core Lightning on another machine: CLNRest's address, a file holding a rune restricted to
    # the invoice methods, and the certificate CLNRest serves (pinned).
    lightning_cln_rest_url: str = ""
    lightning_cln_rune: str = ""
    lightning_cln_cert: str = ""
    lightning_poll_seconds: float = 30.0
    lightning_timeout_seconds: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def cookie_secure(self) -> bool:
        return self.production


_ENV_PREFIX = "SHOP_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(name: str, raw: str, problems: list[str]) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    problems.append(f"{name} must be one of 1/0, true/false, yes/no, on/off (got {raw!r})")
    return False


def _parse_int(name: str, raw: str, problems: list[str], minimum: int, maximum: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        problems.append(f"{name} must be a whole number (got {raw!r})")
        return minimum
    if not minimum <= value <= maximum:
        problems.append(f"{name} must be between {minimum} and {maximum} (got {value})")
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build validated settings; raise ConfigError listing every problem found."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    problems: list[str] = []
    values: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(Settings)}

    for name, f in known.items():
        env_name = _ENV_PREFIX + name.upper()
        if name == "extra" or env_name not in environ:
            continue
        raw = environ[env_name]
        if f.type in ("bool",):
            values[name] = _parse_bool(env_name, raw, problems)
        elif f.type in ("int",):
            values[name] = _parse_int(env_name, raw, problems, f.metadata.get("min", 1), 10**6)
        elif f.type in ("float",):
            try:
                values[name] = float(raw)
            except ValueError:
                problems.append(f"{env_name} must be a number (got {raw!r})")
        else:
            values[name] = raw.strip()

    unknown = set(overrides) - set(known)
    extra = {k: overrides.pop(k) for k in unknown}
    values.update(overrides)
    values["extra"] = {**values.get("extra", {}), **extra}
    values["instance_path"] = Path(values.get("instance_path") or "instance").resolve()

    settings = Settings(**values)
    problems += _validate(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _validate(s: Settings) -> list[str]:
    problems = []
    if s.env not in ENVIRONMENTS:
        problems.append(f"SHOP_ENV must be one of {', '.join(ENVIRONMENTS)} (got {s.env!r})")
    currency = s.currency.upper()
    if currency != s.currency:
        problems.append(f"SHOP_CURRENCY must be upper case, e.g. {currency!r}")
    elif currency != BTC and currency not in list_currencies():
        problems.append(f"SHOP_CURRENCY {s.currency!r} is not an ISO 4217 currency code (or BTC)")
    if not re.fullmatch(r"[A-Z]{2}", s.country):
        problems.append(
            f"SHOP_COUNTRY must be a two-letter ISO 3166 code such as DE (got {s.country!r})"
        )
    try:
        Locale.parse(s.locale)
    except (UnknownLocaleError, ValueError):
        problems.append(f"SHOP_LOCALE {s.locale!r} is not a known locale such as en or de_DE")
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"SHOP_TIMEZONE {s.timezone!r} is not a known time zone such as Europe/Berlin or UTC"
        )
    if not s.store_name.strip():
        problems.append("SHOP_STORE_NAME must not be empty")
    if not 1 <= s.order_expiry_minutes <= 7 * 24 * 60:
        problems.append("SHOP_ORDER_EXPIRY_MINUTES must be between 1 and 10080 (7 days)")
    if s.base_url and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", s.base_url):
        problems.append(f"SHOP_BASE_URL must be an absolute http(s) URL (got {s.base_url!r})")
    if not 0.05 <= s.worker_interval_seconds <= 3600:
        problems.append("SHOP_WORKER_INTERVAL_SECONDS must be between 0.05 and 3600")
    if s.log_format not in ("text", "json"):
        problems.append(f"SHOP_LOG_FORMAT must be text or json (got {s.log_format!r})")
    for section in _SECTIONS:
        problems += section(s)
    return problems + _validate_production(s)


def _validate_production(s: Settings) -> list[str]:
    """What a shop open to customers must not run with."""
    if not s.production:
        return []
    problems = []
    if s.secret_key in KNOWN_UNSAFE_SECRETS or len(s.secret_key) < 32:
        problems.append(
            "SHOP_SECRET_KEY must be set to a random value of at least 32 characters in "
            "production (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    if s.demo_payments:
        problems.append(
            "SHOP_DEMO_PAYMENTS cannot be enabled in production: it lets anyone mark an order paid"
        )
    if s.base_url and not s.base_url.startswith("https://"):
        problems.append("SHOP_BASE_URL must use https in production")
    return problems


def _validate_limits(s: Settings) -> list[str]:
    # The admin's and the downloads' limits: plain ranges, no feature code needed to check them.
    problems = []
    if not 1 <= s.admin_idle_minutes <= 24 * 60:
        problems.append("SHOP_ADMIN_IDLE_MINUTES must be between 1 and 1440 (a day)")
    if not 1 <= s.admin_session_hours <= 24 * 7:
        problems.append("SHOP_ADMIN_SESSION_HOURS must be between 1 and 168 (a week)")
    if not 1 <= s.admin_upload_mb <= 2048:
        problems.append("SHOP_ADMIN_UPLOAD_MB must be between 1 and 2048")
    if not 1 <= s.download_days <= 365:
        problems.append("SHOP_DOWNLOAD_DAYS must be between 1 and 365")
    if not 1 <= s.download_count <= 100:
        problems.append("SHOP_DOWNLOAD_COUNT must be between 1 and 100")
    return problems


# Each feature checks its own section; listed here (not registered by the features) so that
# loading settings never depends on which modules happen to be imported. The order is the
# order of the messages.
_SECTIONS: tuple[Callable[[Settings], list[str]], ...] = (
    tax_settings.validate,
    stripe_settings.validate,
    rate_settings.validate,
    privacy_settings.validate,
    bitcoin_settings.validate,
    lightning_settings.validate,
    _validate_limits,
    mail_settings.validate,
)
