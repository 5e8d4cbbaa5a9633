"""Exchange rates: real ticker formats over loopback HTTP, aggregation, conversion, storage."""

from __future__ import annotations

import json
import time
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from shop.config import ConfigError, load_settings
from shop.db import Database
from shop.jobs.worker import JOBS, Job, run_once
from shop.payments.bitcoin import rate_settings, rates
from shop.payments.bitcoin.rate_models import RateQuote
from shop.payments.bitcoin.rates import (
    HttpClient,
    Quote,
    RatePolicy,
    RatesJob,
    SourcePrice,
    aggregate,
    build_providers,
    current_quote,
    fetch_prices,
    minor_for,
    quote_by_id,
    refresh_rates,
    sats_for,
)
from tests.bitcoin.fake_exchanges import FakeExchanges, FakeSocks5Proxy

EUR_PRICES = {
    "kraken": "87010.1",
    "bitstamp": "87000",
    "coinbase": "86990.55",
    "gemini": "87020.25",
}


@pytest.fixture
def exchanges():
    with FakeExchanges({k: {"EUR": v, "USD": "100000.00"} for k, v in EUR_PRICES.items()}) as fx:
        yield fx


@pytest.fixture
def database(db_url):
    """Only the database (SQLite and PostgreSQL, migrated): rates need no web app."""
    db = Database(db_url)
    yield db
    db.dispose()


@pytest.fixture
def settings(db_url, tmp_path):
    return load_settings({}, {"database_url": db_url, "instance_path": str(tmp_path)})


def providers_for(fx, names=rates.DEFAULT_PROVIDERS):
    return build_providers(names, fx.base_urls)


def now() -> datetime:
    return datetime.now(UTC)


FAST = HttpClient(connect_timeout=2, read_timeout=0.5)


# --- each exchange's real format ------------------------------------------------------------


def test_every_provider_reads_its_exchange_format_exactly(exchanges):
    t = now()
    prices, failures = fetch_prices(providers_for(exchanges), "EUR", FAST, t)
    assert failures == {}
    got = {p.source: p.price for p in prices}
    assert got == {k: Decimal(v) for k, v in EUR_PRICES.items()}
    assert all(isinstance(p.price, Decimal) for p in prices)
    # Kraken and Coinbase carry no time: fetch time. Bitstamp (s) and Gemini (ms) carry theirs.
    at = {p.source: p.at for p in prices}
    assert at["kraken"] == at["coinbase"] == t
    assert abs(at["bitstamp"] - t) < timedelta(seconds=2)
    assert abs(at["gemini"] - t) < timedelta(seconds=2)


def test_requests_carry_nothing_but_the_pair(exchanges):
    for e in exchanges.by_name.values():
        e.set_cookie = True
    fetch_prices(providers_for(exchanges), "EUR", FAST, now())
    fetch_prices(providers_for(exchanges), "EUR", FAST, now())
    paths = {k: {r["path"] for r in e.requests} for k, e in exchanges.by_name.items()}
    assert paths == {
        "kraken": {"/0/public/Ticker?pair=XBTEUR"},
        "bitstamp": {"/api/v2/ticker/btceur/"},
        "coinbase": {"/v2/prices/BTC-EUR/spot"},
        "gemini": {"/v1/pubticker/btceur"},
    }
    for e in exchanges.by_name.values():
        assert len(e.requests) == 2
        for r in e.requests:
            headers = {k.lower(): v for k, v in r["headers"].items()}
            assert headers["user-agent"] == "Mozilla/5.0"
            # A cookie set on the first round never comes back on the second.
            assert not {"cookie", "referer", "authorization", "from"} & set(headers)


def test_unsupported_currency_is_not_even_asked(exchanges):
    prices, failures = fetch_prices(providers_for(exchanges), "SEK", FAST, now())
    assert prices == []
    # Coinbase quotes most currencies and says itself that it has no such pair.
    assert failures["coinbase"] == "API error: Invalid currency"
    assert {k for k, v in failures.items() if v == "does not quote BTC in SEK"} == {
        "kraken",
        "bitstamp",
        "gemini",
    }
    assert [len(e.requests) for e in exchanges.by_name.values()] == [0, 0, 1, 0]


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("http500", "HTTP 500"),
        ("html", "HTTP 502"),
        ("malformed", "malformed JSON"),
    ],
)
def test_broken_answers_are_named_errors(exchanges, mode, expected):
    for e in exchanges.by_name.values():
        e.mode = mode
    prices, failures = fetch_prices(providers_for(exchanges), "EUR", FAST, now())
    assert prices == []
    assert failures == dict.fromkeys(rates.DEFAULT_PROVIDERS, expected)


def test_api_error_bodies_in_each_format(exchanges):
    for e in exchanges.by_name.values():
        e.mode = "api_error"
    prices, failures = fetch_prices(providers_for(exchanges), "EUR", FAST, now())
    assert prices == []
    assert failures == {
        "kraken": "API error: EQuery:Unknown asset pair",  # with HTTP 200
        "bitstamp": "API error: Service unavailable",
        "coinbase": "API error: Invalid currency",
        "gemini": "API error: InvalidSymbol",
    }


def test_nonsense_prices_are_refused():
    for bad in ("0", "-5", "abc", None, True, [1], "NaN", "Infinity"):
        with pytest.raises(rates.RateSourceError):
            rates.to_price("x", bad)
    # JSON's non-standard NaN literal never becomes a (float) price either.
    with pytest.raises(rates.RateSourceError, match="malformed"):
        rates.parse_json("x", '{"last": NaN}')
    assert rates.parse_json("x", '{"p": 87000.123456789012345}')["p"] == Decimal(
        "87000.123456789012345"
    )


def test_a_slow_exchange_times_out_without_holding_up_the_others(exchanges):
    exchanges["bitstamp"].delay = 3
    started = time.monotonic()
    prices, failures = fetch_prices(providers_for(exchanges), "EUR", FAST, now())
    elapsed = time.monotonic() - started
    assert failures == {"bitstamp": "timed out"}
    assert {p.source for p in prices} == {"kraken", "coinbase", "gemini"}
    assert elapsed < 2.5  # the read timeout (0.5 s), not the delay, and fetched concurrently


def test_unreachable_exchange():
    provider = rates.Kraken("http://127.0.0.1:9")  # discard port: nothing listens
    prices, failures = fetch_prices([provider], "EUR", FAST, now())
    assert prices == [] and failures["kraken"].startswith("unreachable")


def test_exchange_timestamp_in_the_future_is_refused(exchanges):
    exchanges["gemini"].timestamp = now() + timedelta(hours=1)
    _, failures = fetch_prices(providers_for(exchanges, ["gemini"]), "EUR", FAST, now())
    assert failures == {"gemini": "timestamp lies in the future"}


def test_requests_go_through_the_socks5_proxy_with_remote_dns(exchanges):
    # The exchange's name does not resolve here; only the proxy knows it (as with Tor).
    proxy = FakeSocks5Proxy({"kraken.invalid": "127.0.0.1"}).start()
    try:
        port = exchanges["kraken"].port
        provider = rates.Kraken(f"http://kraken.invalid:{port}")
        prices, failures = fetch_prices([provider], "EUR", HttpClient(proxy.url), now())
        assert failures == {}
        assert prices[0].price == Decimal(EUR_PRICES["kraken"])
        assert proxy.connects == [("kraken.invalid", port)]
        # Without the proxy the same request cannot even find the host.
        _, failures = fetch_prices([provider], "EUR", FAST, now())
        assert failures["kraken"].startswith("unreachable")
    finally:
        proxy.stop()


def test_shop_http_proxy_setting_routes_every_exchange(database, settings, exchanges):
    names = {f"{kind}.invalid": "127.0.0.1" for kind in rates.DEFAULT_PROVIDERS}
    proxy = FakeSocks5Proxy(names).start()
    try:
        settings = with_bitcoin(settings, http_proxy=proxy.url)
        providers = build_providers(
            rates.DEFAULT_PROVIDERS,
            {kind: f"http://{kind}.invalid:{e.port}" for kind, e in exchanges.by_name.items()},
        )
        result = refresh_rates(database, settings, providers)
        assert result.failures == {} and result.quote.fiat_per_btc == Decimal("87005.05")
        assert sorted(host for host, _ in proxy.connects) == sorted(names)
    finally:
        proxy.stop()


def test_session_ignores_proxy_and_netrc_from_the_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert HttpClient().session().trust_env is False
    assert HttpClient().session().proxies == {}
    assert HttpClient("socks5h://127.0.0.1:9050").session().proxies == {
        "http": "socks5h://127.0.0.1:9050",
        "https": "socks5h://127.0.0.1:9050",
    }


# --- aggregation ----------------------------------------------------------------------------


def sp(source, price, age_seconds=0, at=None):
    t = at or datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    return SourcePrice(source, Decimal(price), t - timedelta(seconds=age_seconds))


T0 = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)


def test_median_of_agreeing_sources():
    quote, rejected = aggregate("EUR", [sp("a", "100"), sp("b", "101"), sp("c", "103")], T0)
    assert quote.fiat_per_btc == Decimal("101") and rejected == {}
    assert [s.source for s in quote.sources] == ["a", "b", "c"]
    quote, _ = aggregate("EUR", [sp("a", "100"), sp("b", "101")], T0)
    assert quote.fiat_per_btc == Decimal("100.5")  # two: their midpoint


def test_outlier_is_dropped_and_the_rest_decide():
    quote, rejected = aggregate(
        "EUR", [sp("a", "87000"), sp("b", "87100"), sp("c", "87050"), sp("d", "95000")], T0
    )
    assert quote.fiat_per_btc == Decimal("87050")
    assert set(rejected) == {"d"} and rejected["d"].startswith("outlier")
    assert "d" not in {s.source for s in quote.sources}


def test_deviation_bound_is_configurable():
    prices = [sp("a", "100"), sp("b", "100"), sp("c", "101.5")]
    assert aggregate("EUR", prices, T0)[0].fiat_per_btc == Decimal("100")
    assert len(aggregate("EUR", prices, T0)[0].sources) == 3  # 1.5 % < 2 %
    quote, rejected = aggregate("EUR", prices, T0, RatePolicy(max_deviation_bp=100))
    assert set(rejected) == {"c"} and len(quote.sources) == 2


def test_two_sources_that_disagree_give_no_rate():
    quote, rejected = aggregate("EUR", [sp("a", "100"), sp("b", "110")], T0)
    assert quote is None and set(rejected) == {"a", "b"}


def test_stale_prices_do_not_count():
    prices = [sp("a", "100", age_seconds=601), sp("b", "101"), sp("c", "102", age_seconds=30)]
    quote, rejected = aggregate("EUR", prices, T0)
    assert quote.fiat_per_btc == Decimal("101.5")
    assert rejected == {"a": "stale (601 s old)"}
    assert quote.as_of == T0 - timedelta(seconds=30)  # as old as its oldest input
    assert aggregate("EUR", prices, T0, RatePolicy(max_age=timedelta(seconds=20)))[0] is None


def test_one_source_alone_never_sets_the_price():
    assert aggregate("EUR", [sp("a", "100")], T0)[0] is None
    assert aggregate("EUR", [], T0)[0] is None
    quote, _ = aggregate(
        "EUR", [sp("a", "1"), sp("b", "1"), sp("c", "1")], T0, RatePolicy(min_sources=3)
    )
    assert quote is not None
    assert aggregate("EUR", [sp("a", "1"), sp("b", "1")], T0, RatePolicy(min_sources=3))[0] is None


# --- conversion -----------------------------------------------------------------------------


def q(currency, rate):
    return Quote(currency, Decimal(rate), T0)


def test_sats_for_rounds_up_to_the_next_satoshi():
    # 10.00 EUR at 87,000 EUR/BTC = 11494.2528... sats -> 11495
    assert sats_for(1000, "EUR", q("EUR", "87000")) == 11495
    # Exact amounts stay exact: 870.00 EUR is 0.01 BTC.
    assert sats_for(87000, "EUR", q("EUR", "87000")) == 1_000_000
    assert sats_for(0, "EUR", q("EUR", "87000")) == 0
    assert sats_for(1, "EUR", q("EUR", "87000")) == 12  # 11.49 -> 12
    # Zero-decimal and three-decimal currencies use their own minor units.
    assert sats_for(1500, "JPY", q("JPY", "15000000")) == 10_000  # 1,500 yen
    assert sats_for(1, "BHD", q("BHD", "33000.125")) == 4  # 0.001 BHD = 3.03 sats
    # The full precision of a rate with many decimals is kept.
    assert sats_for(100, "USD", q("USD", "99999.99999999")) == 1001


def test_sats_for_never_short_changes_the_merchant():
    rate = Decimal("87123.456789")
    quote = q("EUR", rate)
    exact_rate = Fraction(rate)
    for amount in [1, 7, 99, 1234, 99999, 123456789, 10**12 + 3]:
        sats = sats_for(amount, "EUR", quote)
        assert isinstance(sats, int)
        worth = Fraction(sats, 10**8) * exact_rate * 100  # in cents
        assert worth >= amount > Fraction(sats - 1, 10**8) * exact_rate * 100
        assert minor_for(sats, "EUR", quote) >= amount - 1
        assert minor_for(sats, "EUR", quote) <= worth


def test_btc_store_identity_quote():
    quote = current_quote(None, "BTC", T0)
    assert quote.identity and quote.id is None and quote.sources == ()
    assert sats_for(123_456, "BTC", quote) == 123_456
    assert minor_for(123_456, "BTC", quote) == 123_456


def test_conversion_refuses_mismatches():
    with pytest.raises(ValueError, match="quote is for EUR"):
        sats_for(100, "USD", q("EUR", "87000"))
    with pytest.raises(ValueError):
        sats_for(-1, "EUR", q("EUR", "87000"))
    with pytest.raises(TypeError):
        sats_for(10.5, "EUR", q("EUR", "87000"))  # type: ignore[arg-type]


# --- settings -------------------------------------------------------------------------------


def test_the_settings_know_every_provider_and_no_other():
    # rate_settings validates SHOP_RATE_PROVIDERS without importing the providers themselves.
    assert rate_settings.PROVIDER_NAMES == tuple(rates.PROVIDERS)


def test_rate_settings_are_read_and_validated():
    s = load_settings(
        {
            "SHOP_HTTP_PROXY": "socks5h://127.0.0.1:9050",
            "SHOP_RATE_MAX_AGE_SECONDS": "300",
            "SHOP_RATE_MAX_DEVIATION_BP": "150",
            "SHOP_RATE_PROVIDERS": "kraken, coinbase,bitstamp",
        }
    )
    assert (s.http_proxy, s.rate_max_age_seconds, s.rate_max_deviation_bp) == (
        "socks5h://127.0.0.1:9050",
        300,
        150,
    )
    assert rates.parse_provider_names(s.rate_providers) == ["kraken", "coinbase", "bitstamp"]
    policy = RatePolicy.from_settings(s)
    assert policy == RatePolicy(timedelta(seconds=300), 150, 2)

    with pytest.raises(ConfigError) as err:
        load_settings(
            {
                "SHOP_HTTP_PROXY": "socks5://127.0.0.1:9050",
                "SHOP_RATE_PROVIDERS": "kraken,mtgox",
                "SHOP_RATE_MAX_AGE_SECONDS": "5",
                "SHOP_RATE_MAX_DEVIATION_BP": "5000",
            }
        )
    text = str(err.value)
    assert "socks5h://" in text and "mtgox" in text
    assert "SHOP_RATE_MAX_AGE_SECONDS" in text and "SHOP_RATE_MAX_DEVIATION_BP" in text
    with pytest.raises(ConfigError, match="SHOP_RATE_MIN_SOURCES"):
        load_settings({"SHOP_RATE_PROVIDERS": "kraken"})
    with pytest.raises(ConfigError, match="SHOP_RATE_REFRESH_SECONDS"):
        load_settings({"SHOP_RATE_REFRESH_SECONDS": "900"})


# --- storage and the worker (SQLite and PostgreSQL) -----------------------------------------


def test_refresh_stores_the_median_and_checkout_reads_it(database, settings, exchanges):
    t = now()
    result = refresh_rates(database, settings, providers_for(exchanges), t, FAST)
    assert result.failures == {}
    # Median of 86990.55, 87000, 87010.1, 87020.25
    assert result.quote.fiat_per_btc == Decimal("87005.05")
    with database.job_session() as session:
        row = session.scalars(select(RateQuote)).one()
        assert (row.currency, row.fiat_per_btc) == ("EUR", "87005.05")
        assert {s["source"]: s["price"] for s in json.loads(row.sources)} == EUR_PRICES
        quote = current_quote(session, "EUR", t + timedelta(seconds=1))
        assert quote.id == row.id and quote.fiat_per_btc == Decimal("87005.05")
        assert {s.source: s.price for s in quote.sources} == {
            k: Decimal(v) for k, v in EUR_PRICES.items()
        }
        assert sats_for(1000, "EUR", quote) == 11494  # 10 EUR = 11493.58... sats
        # No rate for a currency never fetched; an old quote is refused, yet kept by id.
        assert current_quote(session, "USD", t) is None
        assert current_quote(session, "EUR", quote.as_of + timedelta(seconds=601)) is None
        assert (
            current_quote(session, "EUR", quote.as_of + timedelta(seconds=601), max_age_seconds=900)
            is not None
        )
        assert quote_by_id(session, row.id) == quote


def test_one_exchange_down_still_gives_a_rate(database, settings, exchanges):
    exchanges["kraken"].mode = "http500"
    exchanges["gemini"].mode = "malformed"
    result = refresh_rates(database, settings, providers_for(exchanges), now(), FAST)
    assert result.failures == {"kraken": "HTTP 500", "gemini": "malformed JSON"}
    assert result.quote.fiat_per_btc == (Decimal("87000") + Decimal("86990.55")) / 2


def test_stale_and_outlier_sources_are_left_out(database, settings, exchanges):
    exchanges["bitstamp"].timestamp = now() - timedelta(minutes=11)
    exchanges["coinbase"].prices["EUR"] = "80000"
    result = refresh_rates(database, settings, providers_for(exchanges), now(), FAST)
    assert result.failures["bitstamp"].startswith("stale")
    assert result.failures["coinbase"].startswith("outlier")
    assert {s.source for s in result.quote.sources} == {"kraken", "gemini"}


def test_all_down_means_no_rate_and_the_last_one_expires(database, settings, exchanges):
    t = now()
    assert refresh_rates(database, settings, providers_for(exchanges), t, FAST).quote
    for e in exchanges.by_name.values():
        e.mode = "http500"
    later = t + timedelta(minutes=5)
    result = refresh_rates(database, settings, providers_for(exchanges), later, FAST)
    assert result.quote is None and len(result.failures) == 4
    with database.job_session() as session:
        assert session.scalar(select(func.count()).select_from(RateQuote)) == 1
        assert current_quote(session, "EUR", later) is not None  # still under 10 minutes
        assert current_quote(session, "EUR", t + timedelta(minutes=11)) is None


def test_newest_quote_wins(database, settings, exchanges):
    t = now()
    refresh_rates(database, settings, providers_for(exchanges), t - timedelta(minutes=3), FAST)
    for e in exchanges.by_name.values():
        e.prices["EUR"] = "90000"
    refresh_rates(database, settings, providers_for(exchanges), t, FAST)
    with database.job_session() as session:
        assert current_quote(session, "EUR", t).fiat_per_btc == Decimal("90000")


def with_bitcoin(settings, **changes):
    """The app's settings as the worker sees them once Bitcoin checkout is configured."""
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values["bitcoin_descriptor"] = "wpkh([d34db33f/84h/1h/0h]tpub.../<0;1>/*)"
    return SimpleNamespace(**{**values, **changes})


def test_btc_store_fetches_nothing(database, settings, exchanges):
    btc_store = with_bitcoin(settings, currency="BTC")
    result = refresh_rates(database, btc_store, providers_for(exchanges), now(), FAST)
    assert result.skipped and result.quote is None
    assert RatesJob(lambda: btc_store, providers_for(exchanges))(database) == 0
    assert exchanges.request_count() == 0
    with database.job_session() as session:
        assert current_quote(session, "BTC", now()).identity


def test_card_only_shop_never_talks_to_an_exchange(database, settings, exchanges):
    assert not hasattr(settings, "bitcoin_descriptor") or not settings.bitcoin_descriptor
    assert RatesJob(lambda: settings, providers_for(exchanges))(database) == 0
    off = with_bitcoin(settings, rate_providers="")
    assert RatesJob(lambda: off, providers_for(exchanges))(database) == 0
    assert exchanges.request_count() == 0


def test_worker_job_refreshes_at_most_every_interval(database, settings, exchanges):
    settings = with_bitcoin(settings)
    clock = [1000.0]
    job = RatesJob(lambda: settings, providers_for(exchanges), clock=lambda: clock[0])
    assert job(database) == 1
    assert exchanges.request_count() == 4
    clock[0] += 60  # worker ticks every few seconds; the default interval is 120 s
    assert job(database) == 0
    assert exchanges.request_count() == 4
    # Another worker (or a restarted one) sees the fresh quote in the database and waits too.
    assert RatesJob(lambda: settings, providers_for(exchanges))(database) == 0
    assert exchanges.request_count() == 4
    # While every exchange is down, the job does not retry on every tick either.
    with database.job_session() as session:
        session.execute(RateQuote.__table__.delete())
    for e in exchanges.by_name.values():
        e.mode = "http500"
    clock[0] += 120
    assert job(database) == 0 and exchanges.request_count() == 8
    clock[0] += 5
    assert job(database) == 0 and exchanges.request_count() == 8


def test_worker_runs_the_rates_job(database, settings, exchanges):
    assert any(isinstance(job.run, RatesJob) for job in JOBS)
    # The worker's own instance reads the process environment: no Bitcoin checkout here, so
    # it must do nothing at all (and certainly not reach for a real exchange).
    assert run_once(database)["refresh-rates"] == 0
    job = Job(RatesJob.name, RatesJob(lambda: with_bitcoin(settings), providers_for(exchanges)))
    assert run_once(database, [job]) == {"refresh-rates": 1}
    with database.job_session() as session:
        assert current_quote(session, "EUR", now()).fiat_per_btc == Decimal("87005.05")


def test_absurd_exchange_timestamp_is_a_format_error(exchanges):
    exchanges["bitstamp"].timestamp = SimpleNamespace(timestamp=lambda: 10**20)
    _, failures = fetch_prices(providers_for(exchanges, ["bitstamp"]), "EUR", FAST, now())
    assert failures == {"bitstamp": "unexpected answer format"}
