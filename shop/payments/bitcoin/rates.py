"""BTC exchange rates: public exchange tickers -> one median quote, stored for checkout.

How a rate is made (worker, `refresh_rates`):

* Every configured exchange (Kraken, Bitstamp, Coinbase, Gemini by default) is asked for its
  public BTC ticker in the store's currency, concurrently, each with a connect and a read
  timeout, optionally through a SOCKS5 proxy such as Tor (`SHOP_HTTP_PROXY`). A request carries
  the currency pair and nothing else: no customer data, no cookies, no shop name in the
  User-Agent, no credentials from the environment (``trust_env`` is off).
* A price counts only while it is fresh: its age comes from the exchange's own timestamp where
  the format has one (Bitstamp, Gemini), else from when we fetched it (Kraken, Coinbase).
* The median of the fresh prices is taken; prices further than `max_deviation_bp` from it are
  dropped as outliers, and the median of the rest is the rate. At least `min_sources` prices
  (default 2) must survive. Why 2 of the (at least) 3 asked: one exchange being down or wrong
  must not stop Bitcoin checkout (the most common complaint about other processors), yet no
  single exchange may set the price alone. With two survivors the rate is their midpoint and
  each is within the bound of it, so they agree within twice the bound.
* The quote is as old as its oldest input (`as_of`); `current_quote` refuses one older than
  `max_age`, and then checkout must say Bitcoin is temporarily unavailable.

Arithmetic is Decimal from the JSON text (`parse_float=Decimal`), never float; amounts are
integers (fiat minor units, satoshis). Nothing here imports Flask.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.config import load_settings
from shop.db import utcnow
from shop.money import BTC, SATS_PER_BTC, currency_exponent
from shop.payments.bitcoin.rate_models import RateQuote
from shop.payments.bitcoin.rate_settings import parse_provider_names

if TYPE_CHECKING:
    from shop.config import Settings
    from shop.db import Database

log = logging.getLogger(__name__)

# A pretend rate for a demo that has no rate source configured; shown as such on the page.
DEMO_RATE = Decimal("50000")
DEFAULT_PROVIDERS = ("kraken", "bitstamp", "coinbase", "gemini")
DEFAULT_MAX_AGE_SECONDS = 600
DEFAULT_MAX_DEVIATION_BP = 200  # 2 %
DEFAULT_MIN_SOURCES = 2
DEFAULT_REFRESH_SECONDS = 120
CONNECT_TIMEOUT = 10.0  # Tor circuits can take a few seconds to build
READ_TIMEOUT = 15.0
# The most common User-Agent prefix there is: it says nothing about this shop or its version.
USER_AGENT = "Mozilla/5.0"
MAX_BODY_BYTES = 256 * 1024
# Exchange clocks may run a little ahead of ours; more than this is a broken timestamp.
CLOCK_SKEW = timedelta(seconds=60)


class RateSourceError(Exception):
    """One exchange gave no usable price (down, timeout, error body, malformed answer)."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


@dataclass(frozen=True)
class SourcePrice:
    source: str
    price: Decimal  # major fiat units per 1 BTC
    at: datetime  # the exchange's timestamp, or our fetch time when its format has none


@dataclass(frozen=True)
class Quote:
    """A BTC price in one fiat currency, or the identity quote of a store priced in BTC."""

    currency: str
    fiat_per_btc: Decimal  # major units (euros, not cents) per 1 BTC; 1 for the identity quote
    as_of: datetime
    sources: tuple[SourcePrice, ...] = ()
    id: int | None = None  # the rate_quotes row; None for the identity quote

    @property
    def identity(self) -> bool:
        return self.currency == BTC

    def sources_json(self) -> str:
        return json.dumps(
            [
                {"source": s.source, "price": _plain(s.price), "at": s.at.isoformat()}
                for s in self.sources
            ]
        )


def identity_quote(now: datetime) -> Quote:
    return Quote(currency=BTC, fiat_per_btc=Decimal(1), as_of=now)


# --- conversions ----------------------------------------------------------------------------


def sats_for(amount_minor: int, currency: str, quote: Quote) -> int:
    """Satoshis to ask for `amount_minor` of `currency`, rounded UP to the next satoshi.

    Up, because the invoice must be worth at least the order at the quoted rate: rounding down
    would short the merchant by up to a satoshi on every order, while up costs the customer at
    most one satoshi. Exact integer arithmetic on the rate's ratio: no precision is lost.
    A BTC store's identity quote returns the amount unchanged (its minor unit is the satoshi).
    """
    _check(amount_minor, currency, quote)
    num, den = quote.fiat_per_btc.as_integer_ratio()
    numerator = amount_minor * den * SATS_PER_BTC
    denominator = num * 10 ** currency_exponent(currency)
    return -(-numerator // denominator)


def minor_for(sats: int, currency: str, quote: Quote) -> int:
    """Fiat minor units that `sats` are worth at `quote`, rounded DOWN (never overstates)."""
    _check(sats, currency, quote)
    num, den = quote.fiat_per_btc.as_integer_ratio()
    return (sats * num * 10 ** currency_exponent(currency)) // (den * SATS_PER_BTC)


def _check(amount: int, currency: str, quote: Quote) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("amounts are integers (minor units or satoshis)")
    if amount < 0:
        raise ValueError("amount must not be negative")
    if currency != quote.currency:
        raise ValueError(f"quote is for {quote.currency}, not {currency}")
    if quote.fiat_per_btc <= 0:
        raise ValueError("quote has no positive rate")


def _plain(value: Decimal) -> str:
    """Fixed-point text: str() could give '8.7E+4'."""
    return format(value, "f")


# --- HTTP -----------------------------------------------------------------------------------


class HttpClient:
    """GETs JSON-ish text with timeouts and a size cap, through the proxy if one is set."""

    def __init__(
        self,
        proxy: str = "",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ):
        self.proxy = proxy
        self.timeout = (connect_timeout, read_timeout)

    def session(self) -> requests.Session:
        """A fresh session for each request: no cookie ever comes back to an exchange."""
        session = requests.Session()
        # Ignore HTTP(S)_PROXY, NO_PROXY and ~/.netrc: only SHOP_HTTP_PROXY decides the route,
        # and no stray credentials are ever sent to an exchange.
        session.trust_env = False
        if self.proxy:
            session.proxies = {"http": self.proxy, "https": self.proxy}
        session.headers.clear()
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        return session

    def get(self, session: requests.Session, source: str, url: str) -> tuple[int, str]:
        try:
            with session.get(
                url, timeout=self.timeout, stream=True, allow_redirects=False
            ) as response:
                body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
                status = response.status_code
        except requests.Timeout:
            raise RateSourceError(source, "timed out") from None
        except (requests.RequestException, OSError) as exc:
            raise RateSourceError(source, f"unreachable ({type(exc).__name__})") from None
        if len(body) > MAX_BODY_BYTES:
            raise RateSourceError(source, "answer too large")
        return status, body.decode("utf-8", errors="replace")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a price")


def parse_json(source: str, text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError:
        raise RateSourceError(source, "malformed JSON") from None


def to_price(source: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise RateSourceError(source, "price missing or not a number")
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise RateSourceError(source, "price is not a number") from None
    if not price.is_finite() or price <= 0:
        raise RateSourceError(source, "price is not a positive number")
    return price


# --- providers ------------------------------------------------------------------------------


class Provider:
    """One exchange's public ticker: where to ask, and how to read the answer."""

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    # None: the exchange quotes any fiat currency and says so itself when it does not.
    currencies: ClassVar[frozenset[str] | None] = None

    def __init__(self, base_url: str | None = None):
        self.base_url = (base_url or self.default_base_url).rstrip("/")

    def supports(self, currency: str) -> bool:
        return currency != BTC and (self.currencies is None or currency in self.currencies)

    def url(self, currency: str) -> str:
        raise NotImplementedError

    def api_error(self, doc: Any) -> str | None:
        """The exchange's own error message in an answer, if it is one."""
        return None

    def read(self, doc: Any, currency: str, fetched_at: datetime) -> SourcePrice:
        raise NotImplementedError

    def fetch(
        self, http: HttpClient, session: requests.Session, currency: str, now: datetime
    ) -> SourcePrice:
        if not self.supports(currency):
            raise RateSourceError(self.name, f"does not quote BTC in {currency}")
        status, text = http.get(session, self.name, self.url(currency))
        try:
            doc = parse_json(self.name, text)
        except RateSourceError:
            if status != 200:
                raise RateSourceError(self.name, f"HTTP {status}") from None
            raise
        error = self.api_error(doc)
        if error:
            raise RateSourceError(self.name, f"API error: {error[:200]}")
        if status != 200:
            raise RateSourceError(self.name, f"HTTP {status}")
        try:
            price = self.read(doc, currency, now)
        except (
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
            ValueError,
            OverflowError,
            OSError,
        ):
            raise RateSourceError(self.name, "unexpected answer format") from None
        if price.at > now + CLOCK_SKEW:
            raise RateSourceError(self.name, "timestamp lies in the future")
        return SourcePrice(price.source, price.price, min(price.at, now))


class Kraken(Provider):
    """GET /0/public/Ticker?pair=XBTEUR -> {"error": [], "result": {"XXBTZEUR": {"c": [last,
    lot volume], "a": [...], "b": [...], ...}}}. Errors come with HTTP 200 in "error"
    (["EQuery:Unknown asset pair"]). The format has no timestamp: fetch time is used."""

    name = "kraken"
    default_base_url = "https://api.kraken.com"
    currencies = frozenset({"USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD"})

    def url(self, currency: str) -> str:
        return f"{self.base_url}/0/public/Ticker?pair=XBT{currency}"

    def api_error(self, doc: Any) -> str | None:
        if isinstance(doc, dict) and doc.get("error"):
            return ", ".join(str(e) for e in doc["error"])
        return None

    def read(self, doc: Any, currency: str, fetched_at: datetime) -> SourcePrice:
        # Kraken answers under its own pair name (XXBTZEUR for XBTEUR): take the one entry.
        (ticker,) = doc["result"].values()
        return SourcePrice(self.name, to_price(self.name, ticker["c"][0]), fetched_at)


class Bitstamp(Provider):
    """GET /api/v2/ticker/btceur/ -> {"timestamp": "1764284400", "last": "87123", "bid": ...,
    "ask": ..., "open": ..., "vwap": ..., ...}; the timestamp is in Unix seconds."""

    name = "bitstamp"
    default_base_url = "https://www.bitstamp.net"
    currencies = frozenset({"USD", "EUR", "GBP"})

    def url(self, currency: str) -> str:
        return f"{self.base_url}/api/v2/ticker/btc{currency.lower()}/"

    def api_error(self, doc: Any) -> str | None:
        if isinstance(doc, dict) and doc.get("status") == "error":
            return str(doc.get("reason") or doc.get("code") or "error")
        return None

    def read(self, doc: Any, currency: str, fetched_at: datetime) -> SourcePrice:
        at = datetime.fromtimestamp(int(doc["timestamp"]), UTC)
        return SourcePrice(self.name, to_price(self.name, doc["last"]), at)


class Coinbase(Provider):
    """GET /v2/prices/BTC-EUR/spot -> {"data": {"amount": "87123.45", "base": "BTC",
    "currency": "EUR"}}; errors as {"errors": [{"id": "not_found", "message": ...}]}.
    No timestamp in the format: fetch time is used. Quotes most fiat currencies."""

    name = "coinbase"
    default_base_url = "https://api.coinbase.com"

    def url(self, currency: str) -> str:
        return f"{self.base_url}/v2/prices/BTC-{currency}/spot"

    def api_error(self, doc: Any) -> str | None:
        if isinstance(doc, dict) and doc.get("errors"):
            return ", ".join(
                str(e.get("message") or e.get("id")) if isinstance(e, dict) else str(e)
                for e in doc["errors"]
            )
        return None

    def read(self, doc: Any, currency: str, fetched_at: datetime) -> SourcePrice:
        data = doc["data"]
        if data.get("currency") != currency or data.get("base", BTC) != BTC:
            raise ValueError("answer is for another pair")
        return SourcePrice(self.name, to_price(self.name, data["amount"]), fetched_at)


class Gemini(Provider):
    """GET /v1/pubticker/btceur -> {"bid": ..., "ask": ..., "last": "87123.45", "volume":
    {"BTC": ..., "EUR": ..., "timestamp": 1764284400000}}; the timestamp is in milliseconds.
    Errors: {"result": "error", "reason": "InvalidSymbol", "message": ...} (HTTP 400)."""

    name = "gemini"
    default_base_url = "https://api.gemini.com"
    currencies = frozenset({"USD", "EUR", "GBP", "SGD"})

    def url(self, currency: str) -> str:
        return f"{self.base_url}/v1/pubticker/btc{currency.lower()}"

    def api_error(self, doc: Any) -> str | None:
        if isinstance(doc, dict) and doc.get("result") == "error":
            return str(doc.get("reason") or doc.get("message") or "error")
        return None

    def read(self, doc: Any, currency: str, fetched_at: datetime) -> SourcePrice:
        at = datetime.fromtimestamp(int(doc["volume"]["timestamp"]) / 1000, UTC)
        return SourcePrice(self.name, to_price(self.name, doc["last"]), at)


PROVIDERS: dict[str, type[Provider]] = {p.name: p for p in (Kraken, Bitstamp, Coinbase, Gemini)}


def build_providers(
    names: Iterable[str] = DEFAULT_PROVIDERS, base_urls: dict[str, str] | None = None
) -> list[Provider]:
    base_urls = base_urls or {}
    return [PROVIDERS[n](base_urls.get(n)) for n in names]


# --- aggregation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RatePolicy:
    max_age: timedelta = timedelta(seconds=DEFAULT_MAX_AGE_SECONDS)
    max_deviation_bp: int = DEFAULT_MAX_DEVIATION_BP
    min_sources: int = DEFAULT_MIN_SOURCES

    @classmethod
    def from_settings(cls, settings: Settings) -> RatePolicy:
        return cls(
            max_age=timedelta(
                seconds=getattr(settings, "rate_max_age_seconds", DEFAULT_MAX_AGE_SECONDS)
            ),
            max_deviation_bp=getattr(settings, "rate_max_deviation_bp", DEFAULT_MAX_DEVIATION_BP),
            min_sources=getattr(settings, "rate_min_sources", DEFAULT_MIN_SOURCES),
        )


def aggregate(
    currency: str, prices: Sequence[SourcePrice], now: datetime, policy: RatePolicy = RatePolicy()
) -> tuple[Quote | None, dict[str, str]]:
    """The median quote of the fresh, agreeing prices, and why each other price was left out."""
    rejected: dict[str, str] = {}
    fresh = []
    for p in prices:
        if now - p.at > policy.max_age:
            rejected[p.source] = f"stale ({int((now - p.at).total_seconds())} s old)"
        else:
            fresh.append(p)
    if len(fresh) < policy.min_sources:
        return None, rejected
    center = statistics.median(p.price for p in fresh)
    bound = center * policy.max_deviation_bp / 10_000
    kept = []
    for p in fresh:
        if abs(p.price - center) > bound:
            rejected[p.source] = f"outlier ({_plain(p.price)} vs median {_plain(center)})"
        else:
            kept.append(p)
    if len(kept) < policy.min_sources:
        return None, rejected
    rate = statistics.median(p.price for p in kept)
    kept.sort(key=lambda p: p.source)
    return Quote(currency, rate, min(p.at for p in kept), tuple(kept)), rejected


# --- the worker's side ----------------------------------------------------------------------


@dataclass
class RefreshResult:
    currency: str
    quote: Quote | None = None
    # source -> why it was not used (down, error body, stale, outlier, ...)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: str = ""  # non-empty when nothing was fetched, and why


def fetch_prices(
    providers: Sequence[Provider], currency: str, http: HttpClient, now: datetime
) -> tuple[list[SourcePrice], dict[str, str]]:
    """Ask every provider at once; one slow exchange costs no more than its own timeout."""
    prices: list[SourcePrice] = []
    failures: dict[str, str] = {}
    if not providers:
        return prices, failures

    def one(provider: Provider) -> SourcePrice:
        # A session each: requests.Session is not thread-safe, and nothing is shared anyway.
        with http.session() as session:
            return provider.fetch(http, session, currency, now)

    with ThreadPoolExecutor(len(providers)) as pool:
        futures = {p.name: pool.submit(one, p) for p in providers}
        for name, future in futures.items():
            try:
                prices.append(future.result())
            except RateSourceError as exc:
                failures[name] = exc.reason
    return prices, failures


def refresh_rates(
    database: Database,
    settings: Settings,
    providers: Sequence[Provider] | None = None,
    now: datetime | None = None,
    http: HttpClient | None = None,
) -> RefreshResult:
    """Fetch every provider's ticker for the store's currency and store the median quote.

    The network is used outside any database transaction; only the insert runs in the job's
    unit of work. Returns what happened so the worker can log it.
    """
    currency = settings.currency
    result = RefreshResult(currency)
    if currency == BTC:
        result.skipped = "store is priced in BTC"
        return result
    if providers is None:
        providers = build_providers(
            parse_provider_names(getattr(settings, "rate_providers", ",".join(DEFAULT_PROVIDERS)))
        )
    if not providers:
        result.skipped = "no rate providers configured"
        return result
    http = http or HttpClient(getattr(settings, "http_proxy", ""))
    now = now or datetime.now(UTC)
    prices, result.failures = fetch_prices(providers, currency, http, now)
    quote, rejected = aggregate(currency, prices, now, RatePolicy.from_settings(settings))
    result.failures.update(rejected)
    if quote is None:
        return result
    with database.job_session() as session:
        result.quote = store_quote(session, quote, now)
    return result


def store_quote(session: Session, quote: Quote, fetched_at: datetime) -> Quote:
    row = RateQuote(
        currency=quote.currency,
        fiat_per_btc=_plain(quote.fiat_per_btc),
        sources=quote.sources_json(),
        as_of=quote.as_of,
        fetched_at=fetched_at,
    )
    session.add(row)
    session.flush()
    return Quote(quote.currency, quote.fiat_per_btc, quote.as_of, quote.sources, row.id)


def current_quote(
    session: Session, currency: str, now: datetime, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
) -> Quote | None:
    """The newest stored quote for `currency` if it is younger than `max_age_seconds`.

    None means no usable rate: Bitcoin checkout is temporarily unavailable (card still works).
    A store priced in BTC always gets the identity quote (rate 1, no sources, id None).
    """
    if currency == BTC:
        return identity_quote(now)
    row = session.scalars(
        select(RateQuote)
        .where(RateQuote.currency == currency)
        .order_by(RateQuote.as_of.desc(), RateQuote.id.desc())
        .limit(1)
    ).first()
    if row is None or now - row.as_of > timedelta(seconds=max_age_seconds):
        return None
    return quote_from_row(row)


def quote_by_id(session: Session, quote_id: int) -> Quote | None:
    """A stored quote regardless of age (an invoice shows the rate it was locked at)."""
    row = session.get(RateQuote, quote_id)
    return quote_from_row(row) if row is not None else None


def quote_from_row(row: RateQuote) -> Quote:
    sources = tuple(
        SourcePrice(s["source"], Decimal(s["price"]), datetime.fromisoformat(s["at"]))
        for s in json.loads(row.sources)
    )
    return Quote(row.currency, Decimal(row.fiat_per_btc), row.as_of, sources, row.id)


def rates_wanted(settings: Settings) -> bool:
    """Whether the worker fetches rates at all: only when Bitcoin checkout is configured
    (SHOP_BITCOIN_DESCRIPTOR), the store is not priced in BTC, and providers are not switched
    off (SHOP_RATE_PROVIDERS=""). A card-only shop never talks to an exchange."""
    return (
        bool(getattr(settings, "bitcoin_descriptor", ""))
        and settings.currency != BTC
        and bool(getattr(settings, "rate_providers", ",".join(DEFAULT_PROVIDERS)).strip())
    )


class RatesJob:
    """The worker job: refresh at most every SHOP_RATE_REFRESH_SECONDS, whatever the tick.

    The interval is kept in memory (so an exchange outage is not hammered every tick) and in
    the database (so several workers, or a restarted one, do not refresh more often either).
    """

    name = "refresh-rates"

    def __init__(
        self,
        settings_loader: Callable[[], Settings] | None = None,
        providers: Sequence[Provider] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._settings_loader = settings_loader
        self._settings: Settings | None = None
        self._providers = providers
        self._clock = clock
        self._next = float("-inf")
        self._lock = threading.Lock()

    def __call__(self, database: Database, settings: Settings | None = None) -> int:
        if settings is None:
            settings = self._load_settings()
        if not rates_wanted(settings):
            return 0
        interval = getattr(settings, "rate_refresh_seconds", DEFAULT_REFRESH_SECONDS)
        with self._lock:
            if self._clock() < self._next:
                return 0
            self._next = self._clock() + interval
        now = datetime.now(UTC)
        with database.job_session() as session:
            last = session.scalars(
                select(RateQuote.fetched_at)
                .where(RateQuote.currency == settings.currency)
                .order_by(RateQuote.fetched_at.desc())
                .limit(1)
            ).first()
        if last is not None and now - last < timedelta(seconds=interval):
            return 0
        result = refresh_rates(database, settings, self._providers, now)
        for source, reason in sorted(result.failures.items()):
            log.warning("rate source %s not used: %s", source, reason)
        if result.quote is None:
            log.warning(
                "no usable %s rate (%d source(s) failed); Bitcoin checkout is paused",
                settings.currency,
                len(result.failures),
            )
            return 0
        log.info(
            "BTC/%s rate %s from %s",
            settings.currency,
            _plain(result.quote.fiat_per_btc),
            ", ".join(s.source for s in result.quote.sources),
        )
        return 1

    def _load_settings(self) -> Settings:
        if self._settings_loader is not None:
            return self._settings_loader()
        if self._settings is None:
            # Jobs get only the Database; the worker process was configured from the same
            # SHOP_* environment, which does not change while it runs.
            self._settings = load_settings()
        return self._settings


@dataclass(frozen=True)
class LockedRate:
    """The rate an invoice was priced at: fiat major units per BTC as an exact decimal."""

    fiat_per_btc: Decimal
    quote_id: int | None = None


def sats_due(total_minor: int, currency: str, rate: LockedRate) -> int:
    if currency == BTC:
        return total_minor  # a BTC store's minor unit is the satoshi
    quote = Quote(
        currency=currency, fiat_per_btc=rate.fiat_per_btc, as_of=utcnow(), id=rate.quote_id
    )
    return sats_for(total_minor, currency, quote)
