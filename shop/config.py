"""Settings: defaults < SHOP_* environment < explicit overrides (tests), validated at start-up.

Nothing here is read at import time: `load_settings()` is called by the app factory and the CLI,
so every test can build an isolated app from its own settings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies

from shop.money import BTC

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


def _validate_stripe(s: Settings) -> list[str]:
    problems = []
    key, hook = s.stripe_secret_key, s.stripe_webhook_secret
    if bool(key) != bool(hook):
        problems.append(
            "SHOP_STRIPE_SECRET_KEY and SHOP_STRIPE_WEBHOOK_SECRET go together: card "
            "payments are confirmed only by signed webhooks"
        )
    if key and not re.fullmatch(r"[sr]k_(test|live)_[A-Za-z0-9_]+", key):
        problems.append(
            "SHOP_STRIPE_SECRET_KEY must be a secret or restricted key (sk_live_…, "
            "sk_test_…, rk_…), never the publishable pk_… key"
        )
    if hook and not re.fullmatch(r"whsec_[A-Za-z0-9_+/=]+", hook):
        problems.append(
            "SHOP_STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret (whsec_…)"
        )
    if s.stripe_api_base and not re.fullmatch(r"https?://[^\s/]+/?", s.stripe_api_base):
        problems.append(
            "SHOP_STRIPE_API_BASE must be a scheme and host such as "
            f"https://api.stripe.com (got {s.stripe_api_base!r})"
        )
    if not re.fullmatch(r"https?://[^\s/]+", s.stripe_checkout_origin):
        problems.append(
            "SHOP_STRIPE_CHECKOUT_ORIGIN must be an origin such as "
            f"https://checkout.stripe.com, without a path (got {s.stripe_checkout_origin!r})"
        )
    if not 1 <= s.stripe_timeout_seconds <= 120:
        problems.append("SHOP_STRIPE_TIMEOUT_SECONDS must be between 1 and 120")
    if not 1 <= s.request_budget_seconds <= 60:
        problems.append("SHOP_REQUEST_BUDGET_SECONDS must be between 1 and 60")
    if s.production and key:
        if not s.base_url:
            problems.append(
                "SHOP_BASE_URL is required in production with card payments: Stripe "
                "sends customers back to it, so it must not depend on a request's "
                "Host header"
            )
        if "_test_" in key[:8]:
            problems.append(
                "SHOP_STRIPE_SECRET_KEY is a test key: in production, orders paid with "
                "test cards would be marked paid without any money moving"
            )
        for name, url in (
            ("SHOP_STRIPE_API_BASE", s.stripe_api_base),
            ("SHOP_STRIPE_CHECKOUT_ORIGIN", s.stripe_checkout_origin),
        ):
            if url and not url.startswith("https://"):
                problems.append(f"{name} must use https in production")
    return problems


def _validate_rates(s: Settings) -> list[str]:
    from shop.payments.bitcoin.rates import parse_provider_names

    problems = []
    if s.http_proxy:
        if s.http_proxy.startswith("socks5://"):
            problems.append(
                "SHOP_HTTP_PROXY: use socks5h:// rather than socks5:// so host names "
                "are resolved by the proxy, not by a DNS lookup outside it"
            )
        elif not re.fullmatch(r"(socks5h|https?)://[^\s/]+/?", s.http_proxy):
            problems.append(
                "SHOP_HTTP_PROXY must look like socks5h://127.0.0.1:9050 (or "
                f"http(s)://host:port) (got {s.http_proxy!r})"
            )
    try:
        providers = parse_provider_names(s.rate_providers)
    except ValueError as exc:
        problems.append(f"SHOP_RATE_PROVIDERS: {exc}")
        providers = []
    if providers and not 2 <= s.rate_min_sources <= len(providers):
        problems.append(
            f"SHOP_RATE_MIN_SOURCES must be between 2 and the number of "
            f"SHOP_RATE_PROVIDERS ({len(providers)}): one exchange alone must never "
            "set the price"
        )
    if not 60 <= s.rate_max_age_seconds <= 3600:
        problems.append("SHOP_RATE_MAX_AGE_SECONDS must be between 60 and 3600")
    if not 1 <= s.rate_max_deviation_bp <= 2000:
        problems.append("SHOP_RATE_MAX_DEVIATION_BP must be between 1 and 2000 (0.01 % to 20 %)")
    if not 10 <= s.rate_refresh_seconds < s.rate_max_age_seconds:
        problems.append(
            "SHOP_RATE_REFRESH_SECONDS must be at least 10 and less than "
            "SHOP_RATE_MAX_AGE_SECONDS, or every quote would go stale between fetches"
        )
    return problems


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
    problems += _validate_tax(s)
    problems += _validate_stripe(s)
    problems += _validate_rates(s)
    problems += _validate_privacy(s)
    problems += _validate_bitcoin(s)
    problems += _validate_lightning(s)
    problems += _validate_admin(s)
    if s.production:
        if s.secret_key in KNOWN_UNSAFE_SECRETS or len(s.secret_key) < 32:
            problems.append(
                "SHOP_SECRET_KEY must be set to a random value of at least 32 characters in "
                "production (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        if s.demo_payments:
            problems.append(
                "SHOP_DEMO_PAYMENTS cannot be enabled in production: it lets anyone "
                "mark an order paid"
            )
        if s.base_url and not s.base_url.startswith("https://"):
            problems.append("SHOP_BASE_URL must use https in production")
    return problems


def _validate_tax(s: Settings) -> list[str]:
    from shop.tax import rates

    problems = []
    if s.vat_scheme not in rates.SCHEMES:
        problems.append(
            f"SHOP_VAT_SCHEME must be origin (under the EU's €10,000 threshold) or oss "
            f"(registered for the One-Stop-Shop) (got {s.vat_scheme!r})"
        )
    elif s.vat_scheme == rates.OSS and s.country not in rates.eu_rates().members():
        problems.append(
            f"SHOP_VAT_SCHEME=oss is for stores in the EU; SHOP_COUNTRY is {s.country!r}"
        )
    if s.vat_fixed_price not in rates.FIXED:
        problems.append(
            f"SHOP_VAT_FIXED_PRICE must be gross (the same price in every country) or "
            f"net (the price before VAT stays) (got {s.vat_fixed_price!r})"
        )
    if s.digital_without_consent not in ("refuse", "delay"):
        problems.append(
            "SHOP_DIGITAL_WITHOUT_CONSENT must be refuse (no order without the consent "
            "to immediate delivery) or delay (the download waits for the withdrawal "
            f"period) (got {s.digital_without_consent!r})"
        )
    return problems


def _validate_bitcoin(s: Settings) -> list[str]:
    from shop.payments.bitcoin.settings import validate

    return validate(s)


def _validate_lightning(s: Settings) -> list[str]:
    from shop.payments.lightning.settings import validate

    return validate(s)


def _validate_privacy(s: Settings) -> list[str]:
    from shop.privacy.crypto import DataKeyError, load_master_key

    problems = []
    if s.production and not s.data_key:
        problems.append(
            "SHOP_DATA_KEY is required in production: it encrypts customers' personal "
            "data (generate one with `shop privacy generate-key`)"
        )
    keys = [("SHOP_DATA_KEY", s.data_key)] + [
        (f"SHOP_DATA_KEY_OLD[{i}]", part)
        for i, part in enumerate(s.data_key_old.split(","))
        if part.strip()
    ]
    for name, text in keys:
        if text:
            try:
                load_master_key(text, name=name)
            except DataKeyError as exc:
                problems.append(str(exc))
    if not 1 <= s.retention_unpaid_hours <= 24 * 365:
        problems.append("SHOP_RETENTION_UNPAID_HOURS must be between 1 and 8760 (a year)")
    if not 1 <= s.retention_fulfilled_days <= 3650:
        problems.append("SHOP_RETENTION_FULFILLED_DAYS must be between 1 and 3650")
    if not 1 <= s.ledger_retention_years <= 30:
        problems.append("SHOP_LEDGER_RETENTION_YEARS must be between 1 and 30")
    return problems


def _validate_admin(s: Settings) -> list[str]:
    from shop.mail.smtp import SmtpUrlError, parse_smtp_url

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
    if s.smtp_url:
        try:
            smtp = parse_smtp_url(s.smtp_url)
        except SmtpUrlError as exc:
            problems.append(str(exc))
        else:
            if s.production and smtp.security == "none" and not smtp.is_loopback:
                problems.append(
                    "SHOP_SMTP_URL must use smtps:// or smtp+starttls:// in production "
                    "unless the server is on this machine"
                )
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", s.mail_from):
            problems.append(
                "SHOP_MAIL_FROM must be the sender's email address when SHOP_SMTP_URL is set"
            )
    return problems


def resolve_secrets(settings: Settings) -> Settings:
    """Outside production, generate and persist what is missing so the demo needs no setup."""
    updates: dict[str, Any] = {}
    instance = settings.instance_path
    if not settings.database_url:
        instance.mkdir(parents=True, exist_ok=True)
        updates["database_url"] = f"sqlite:///{instance / 'shop.sqlite3'}"
    if not settings.secret_key:
        if settings.production:  # _validate already refused this; keep the guard local too
            raise ConfigError(["SHOP_SECRET_KEY is required in production"])
        instance.mkdir(parents=True, exist_ok=True)
        from shop.privacy.keys import create_file_once

        updates["secret_key"] = create_file_once(instance / "secret_key", secrets.token_urlsafe(48))
    if not settings.data_key:
        if settings.production:  # _validate already refused this; keep the guard local too
            raise ConfigError(["SHOP_DATA_KEY is required in production"])
        from shop.privacy.keys import instance_data_key

        updates["data_key"] = instance_data_key(instance)
    return dataclasses.replace(settings, **updates) if updates else settings
