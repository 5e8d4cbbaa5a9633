"""Lightning settings: which node (LND or Core Lightning), validated at start-up.

No Flask, no database: `validate` is called from shop.config._validate with the whole Settings.
The node's credential is checked here, before the shop serves anyone: an LND macaroon that could
spend the node's money is refused.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from shop.payments.lightning.backend import LightningBackend, pinned_context
from shop.payments.lightning.cln.client import ClnRpc, read_rune
from shop.payments.lightning.cln.rune import RuneError, check
from shop.payments.lightning.lnd.client import LndRest
from shop.payments.lightning.lnd.macaroon import MacaroonError, check_file
from shop.payments.lightning.simulated import SimulatedNode

if TYPE_CHECKING:
    from shop.config import Settings


def kind(settings: Settings) -> str:
    """ "lnd", "cln", "simulated" (the demo's pretend network) or "" (Lightning is off)."""
    if settings.lightning_lnd_url:
        return "lnd"
    if settings.lightning_cln_rpc or settings.lightning_cln_rest_url:
        return "cln"
    # The demo's simulated Bitcoin network carries simulated Lightning too.
    if settings.bitcoin_simulated and not settings.bitcoin_descriptor and not settings.production:
        return "simulated"
    return ""


def backend_from(settings: Settings) -> LightningBackend | None:
    which = kind(settings)
    if which == "lnd":
        return LndRest(
            settings.lightning_lnd_url,
            settings.lightning_lnd_macaroon,
            settings.lightning_lnd_cert,
            timeout=settings.lightning_timeout_seconds,
        )
    if which == "cln":
        if settings.lightning_cln_rest_url:
            return ClnRpc.rest(
                settings.lightning_cln_rest_url,
                settings.lightning_cln_rune,
                settings.lightning_cln_cert,
                timeout=settings.lightning_timeout_seconds,
            )
        return ClnRpc(settings.lightning_cln_rpc, timeout=settings.lightning_timeout_seconds)
    if which == "simulated":
        return SimulatedNode()
    return None


def validate(s: Settings) -> list[str]:
    problems: list[str] = []
    lnd = s.lightning_lnd_url or s.lightning_lnd_macaroon or s.lightning_lnd_cert
    rest = s.lightning_cln_rest_url or s.lightning_cln_rune or s.lightning_cln_cert
    if sum(map(bool, (lnd, s.lightning_cln_rpc, rest))) > 1:
        problems.append(
            "SHOP_LIGHTNING_LND_URL, SHOP_LIGHTNING_CLN_RPC and SHOP_LIGHTNING_CLN_REST_URL "
            "exclude each other: the shop takes Lightning through one node, one way"
        )
    if rest:
        problems += _validate_cln_rest(s)
    if lnd:
        if not (s.lightning_lnd_url and s.lightning_lnd_macaroon and s.lightning_lnd_cert):
            problems.append(
                "SHOP_LIGHTNING_LND_URL, SHOP_LIGHTNING_LND_MACAROON and "
                "SHOP_LIGHTNING_LND_CERT go together (the REST address, an "
                "invoice-only macaroon file and the node's tls.cert)"
            )
        elif not re.fullmatch(r"https://[^\s/]+/?", s.lightning_lnd_url):
            problems.append(
                "SHOP_LIGHTNING_LND_URL must be https://host:port, LND's REST "
                f"address (got {s.lightning_lnd_url!r})"
            )
        else:
            try:
                check_file(s.lightning_lnd_macaroon)
            except MacaroonError as exc:
                problems.append(f"SHOP_LIGHTNING_LND_MACAROON cannot be used: {exc}")
            try:
                pinned_context(s.lightning_lnd_cert)
            except ValueError as exc:
                problems.append(f"SHOP_LIGHTNING_LND_CERT: {exc}")
    if s.lightning_cln_rpc and not os.path.isabs(s.lightning_cln_rpc):
        problems.append(
            "SHOP_LIGHTNING_CLN_RPC must be the absolute path of lightningd's "
            "socket, e.g. /var/lib/lightningd/bitcoin/lightning-rpc"
        )
    if not 1 <= s.lightning_poll_seconds <= 3600:
        problems.append("SHOP_LIGHTNING_POLL_SECONDS must be between 1 and 3600")
    if not 0.5 <= s.lightning_timeout_seconds <= 30:
        problems.append("SHOP_LIGHTNING_TIMEOUT_SECONDS must be between 0.5 and 30")
    return problems


def _validate_cln_rest(s: Settings) -> list[str]:
    if not (s.lightning_cln_rest_url and s.lightning_cln_rune and s.lightning_cln_cert):
        return [
            "SHOP_LIGHTNING_CLN_REST_URL, SHOP_LIGHTNING_CLN_RUNE and SHOP_LIGHTNING_CLN_CERT go "
            "together (CLNRest's address, a file with a rune restricted to invoice methods, and "
            "the certificate CLNRest serves)"
        ]
    if not re.fullmatch(r"https://[^\s/]+/?", s.lightning_cln_rest_url):
        return [
            "SHOP_LIGHTNING_CLN_REST_URL must be https://host:port, CLNRest's address "
            f"(got {s.lightning_cln_rest_url!r})"
        ]
    problems = []
    try:
        check(read_rune(s.lightning_cln_rune))
    except (RuneError, ValueError) as exc:
        problems.append(f"SHOP_LIGHTNING_CLN_RUNE cannot be used: {exc}")
    try:
        pinned_context(s.lightning_cln_cert)
    except ValueError as exc:
        problems.append(f"SHOP_LIGHTNING_CLN_CERT: {exc}")
    return problems
