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
    # Minutes an unpaid order keeps its stock reserved.
    order_expiry_minutes: int = 30
    # The clearly labelled pretend payment method of the demo; refused in production.
    demo_payments: bool = False
    products_per_page: int = 12
    # Absolute base URL (scheme and host) for links that leave the request context,
    # e.g. payment-provider return URLs; empty means "derive from the request".
    base_url: str = ""
    worker_interval_seconds: float = 5.0
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
            values[name] = _parse_int(env_name, raw, problems, 1, 10**6)
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
        problems.append(f"SHOP_COUNTRY must be a two-letter ISO 3166 code such as DE (got {s.country!r})")
    try:
        Locale.parse(s.locale)
    except (UnknownLocaleError, ValueError):
        problems.append(f"SHOP_LOCALE {s.locale!r} is not a known locale such as en or de_DE")
    if not s.store_name.strip():
        problems.append("SHOP_STORE_NAME must not be empty")
    if not 1 <= s.order_expiry_minutes <= 7 * 24 * 60:
        problems.append("SHOP_ORDER_EXPIRY_MINUTES must be between 1 and 10080 (7 days)")
    if s.base_url and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", s.base_url):
        problems.append(f"SHOP_BASE_URL must be an absolute http(s) URL (got {s.base_url!r})")
    if s.production:
        if s.secret_key in KNOWN_UNSAFE_SECRETS or len(s.secret_key) < 32:
            problems.append(
                "SHOP_SECRET_KEY must be set to a random value of at least 32 characters in "
                "production (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        if s.demo_payments:
            problems.append("SHOP_DEMO_PAYMENTS cannot be enabled in production: it lets anyone "
                            "mark an order paid")
        if s.base_url and not s.base_url.startswith("https://"):
            problems.append("SHOP_BASE_URL must use https in production")
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
        key_file = instance / "secret_key"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        updates["secret_key"] = key_file.read_text().strip()
    return dataclasses.replace(settings, **updates) if updates else settings
