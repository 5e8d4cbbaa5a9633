"""Bitcoin settings: validated at start-up, turned into the policy the invoice code applies.

No Flask, no database: `validate` is called from shop.config._validate with the whole Settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from shop.payments.bitcoin.descriptor import (
    SUPPORTED_NETWORKS,
    DescriptorError,
    WatchOnlyDescriptor,
    parse_watch_only,
)
from shop.payments.bitcoin.node import NodeClient

if TYPE_CHECKING:
    from shop.config import Settings

# The simulated demo chain pays to this regtest account key. It was generated once from a random
# seed that was thrown away: nobody holds its private key, so nothing sent to it can ever be
# spent, which is exactly right for pretend payments.
SIMULATED_DESCRIPTOR = (
    "wpkh([a1101b85/84h/1h/0h]tpubDDWGrgvSKQjU8feoTkxf3pMMte9VVnHL2EfHSmAKRkn1kTvPBkAVYCiCkef"
    "zF4QBbLGChLRHdVak1dwzjiXpRPGxDGa6zQa2f3LcC29iz8U/<0;1>/*)"
)
SIMULATED_NETWORK = "regtest"

_ZMQ_ENDPOINT = re.compile(r"(tcp://[^\s/]+:\d+|ipc://\S+)")


@dataclass(frozen=True)
class BitcoinPolicy:
    """When an invoice counts as paid. All amounts in satoshis, never floats."""

    confirmations: int = 1
    zero_conf_max_sats: int = 0
    # How long an unconfirmed payment must stay unchallenged in the mempool before zero-conf.
    zero_conf_settle: timedelta = timedelta(seconds=60)
    tolerance_bp: int = 0  # hundredths of a percent
    tolerance_sats: int = 0
    payment_window: timedelta = timedelta(minutes=30)
    late_window: timedelta = timedelta(days=7)
    gap_limit: int = 20

    def tolerance_for(self, due_sats: int) -> int:
        """How many sats an invoice may be short and still count as paid (the larger rule wins)."""
        by_percent = due_sats * self.tolerance_bp // 10_000
        return max(by_percent, self.tolerance_sats)


def percent_to_bp(text: str) -> int:
    """'0.5' -> 50 basis points; exact, at most two decimals."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError("must be a number such as 0.5") from None
    bp = value * 100
    if not value.is_finite() or bp != bp.to_integral_value() or not 0 <= value <= 50:
        raise ValueError("must be between 0 and 50 with at most two decimals")
    return int(bp)


def policy_from(settings: Settings) -> BitcoinPolicy:
    return BitcoinPolicy(
        confirmations=settings.bitcoin_confirmations,
        zero_conf_max_sats=settings.bitcoin_zero_conf_max_sats,
        zero_conf_settle=timedelta(seconds=settings.bitcoin_zero_conf_settle_seconds),
        tolerance_bp=percent_to_bp(settings.bitcoin_underpayment_tolerance_percent),
        tolerance_sats=settings.bitcoin_underpayment_tolerance_sats,
        payment_window=timedelta(minutes=settings.bitcoin_payment_window_minutes),
        late_window=timedelta(days=settings.bitcoin_late_payment_days),
        gap_limit=settings.bitcoin_gap_limit,
    )


def enabled(settings: Settings) -> bool:
    return bool(settings.bitcoin_descriptor) or simulated(settings)


def simulated(settings: Settings) -> bool:
    return bool(
        settings.bitcoin_simulated and not settings.bitcoin_descriptor and not settings.production
    )


def descriptor_from(settings: Settings) -> WatchOnlyDescriptor | None:
    if settings.bitcoin_descriptor:
        return parse_watch_only(settings.bitcoin_descriptor, settings.bitcoin_network)
    if simulated(settings):
        return parse_watch_only(SIMULATED_DESCRIPTOR, SIMULATED_NETWORK)
    return None


def validate(s: Settings) -> list[str]:
    return [
        *_wallet_problems(s),
        *_node_problems(s),
        *_policy_problems(s),
        *_simulation_problems(s),
    ]


def _wallet_problems(s: Settings) -> list[str]:
    """The descriptor, its network, and the node it needs."""
    problems: list[str] = []
    if s.bitcoin_network not in SUPPORTED_NETWORKS:
        problems.append(
            f"SHOP_BITCOIN_NETWORK must be one of {', '.join(SUPPORTED_NETWORKS)} "
            f"(got {s.bitcoin_network!r})"
        )
    elif s.bitcoin_descriptor:
        try:
            parse_watch_only(s.bitcoin_descriptor, s.bitcoin_network)
        except DescriptorError as exc:
            # The message never repeats the input, so a pasted secret stays out of the logs.
            problems.append(f"SHOP_BITCOIN_DESCRIPTOR cannot be used: {exc}")
    if s.bitcoin_descriptor:
        if not s.bitcoin_rpc_url:
            problems.append(
                "SHOP_BITCOIN_RPC_URL is required with SHOP_BITCOIN_DESCRIPTOR: "
                "payments are detected by your own Bitcoin Core node"
            )
        if s.production and s.bitcoin_network != "main":
            problems.append(
                f"SHOP_BITCOIN_NETWORK is {s.bitcoin_network!r} in production: test "
                "coins are worthless, so orders would be marked paid for nothing"
            )
    return problems


def _node_problems(s: Settings) -> list[str]:
    """How the shop reaches the node: RPC and the ZMQ notifications."""
    problems: list[str] = []
    if s.bitcoin_rpc_url:
        try:
            NodeClient(s.bitcoin_rpc_url, s.bitcoin_rpc_cookie or None)
        except ValueError as exc:
            problems.append(
                f"SHOP_BITCOIN_RPC_URL: {exc} (e.g. http://127.0.0.1:8332 with "
                "SHOP_BITCOIN_RPC_COOKIE=/var/lib/bitcoind/.cookie)"
            )
    for name, value in (
        ("SHOP_BITCOIN_ZMQ_BLOCK", s.bitcoin_zmq_block),
        ("SHOP_BITCOIN_ZMQ_TX", s.bitcoin_zmq_tx),
        ("SHOP_BITCOIN_ZMQ_SEQUENCE", s.bitcoin_zmq_sequence),
    ):
        if value and not _ZMQ_ENDPOINT.fullmatch(value):
            problems.append(
                f"{name} must be a ZMQ endpoint such as tcp://127.0.0.1:28332 (got {value!r})"
            )
    return problems


def _policy_problems(s: Settings) -> list[str]:
    """The numbers of the payment policy and the polling."""
    problems: list[str] = []
    if not 1 <= s.bitcoin_payment_window_minutes <= 24 * 60:
        problems.append("SHOP_BITCOIN_PAYMENT_WINDOW_MINUTES must be between 1 and 1440")
    if not 1 <= s.bitcoin_confirmations <= 100:
        problems.append("SHOP_BITCOIN_CONFIRMATIONS must be between 1 and 100")
    if not 0 <= s.bitcoin_zero_conf_max_sats <= 21_000_000 * 100_000_000:
        problems.append("SHOP_BITCOIN_ZERO_CONF_MAX_SATS must be a number of satoshis (0: off)")
    try:
        percent_to_bp(s.bitcoin_underpayment_tolerance_percent)
    except ValueError as exc:
        problems.append(f"SHOP_BITCOIN_UNDERPAYMENT_TOLERANCE_PERCENT {exc}")
    if s.bitcoin_underpayment_tolerance_sats < 0:
        problems.append("SHOP_BITCOIN_UNDERPAYMENT_TOLERANCE_SATS must not be negative")
    if not 0 <= s.bitcoin_late_payment_days <= 365:
        problems.append("SHOP_BITCOIN_LATE_PAYMENT_DAYS must be between 0 and 365")
    if not 1 <= s.bitcoin_gap_limit <= 10_000:
        problems.append("SHOP_BITCOIN_GAP_LIMIT must be between 1 and 10000")
    if not 0.1 <= s.bitcoin_poll_seconds <= 3600:
        problems.append("SHOP_BITCOIN_POLL_SECONDS must be between 0.1 and 3600")
    return problems


def _simulation_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    if s.bitcoin_simulated and s.production:
        problems.append(
            "SHOP_BITCOIN_SIMULATED cannot be enabled in production: its "
            '"simulate payment" button would let anyone mark an order paid'
        )
    if s.bitcoin_simulated and s.bitcoin_descriptor:
        problems.append(
            "SHOP_BITCOIN_SIMULATED and SHOP_BITCOIN_DESCRIPTOR exclude each other: "
            "the simulated chain is only for a demo without a wallet"
        )
    return problems
