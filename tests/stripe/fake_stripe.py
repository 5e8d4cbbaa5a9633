"""A fake Stripe API on loopback, for driving the real stripe-python SDK in tests.

It implements only what the shop calls (Checkout Sessions, PaymentIntent retrieval, refunds),
speaks Stripe's wire format (form-encoded requests with bracketed keys, JSON objects and
Stripe-shaped errors), honours Idempotency-Key like Stripe, records every request so tests can
assert what was sent, and can fail or stall on demand. A minimal hosted payment page
(/pay/{session}) lets end-to-end tests "pay" through a browser-like client.

Usage:
    with FakeStripe(api_key="sk_test_x", webhook_secret="whsec_x") as fake:
        gateway = StripeGateway("sk_test_x", api_base=fake.api_base)
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

# Currencies whose API amounts must end in 0 (see shop.payments.stripe.amounts).
_THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}

_SESSION_PARAMS = {
    "mode", "line_items", "client_reference_id", "metadata", "success_url", "cancel_url",
    "expires_at", "shipping_options", "expand", "locale", "payment_method_types",
    "customer", "customer_email", "customer_creation", "billing_address_collection",
    "phone_number_collection", "shipping_address_collection", "payment_intent_data",
    "submit_type", "allow_promotion_codes", "ui_mode", "return_url", "automatic_tax",
}  # fmt: skip
_REFUND_PARAMS = {"payment_intent", "charge", "amount", "metadata", "reason", "expand"}

# Personal data a real completed session carries; tests check that the shop never copies it.
FAKE_CUSTOMER_DETAILS: dict[str, Any] = {
    "email": "jenny.rosen@example.com",
    "name": "Jenny Rosen",
    "phone": "+4915112345678",
    "address": {
        "city": "Berlin",
        "country": "DE",
        "line1": "Hauptstrasse 1",
        "line2": None,
        "postal_code": "10115",
        "state": None,
    },
    "tax_exempt": "none",
    "tax_ids": [],
}


def fast_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the SDK's retry back-off instant.

    stripe-python sleeps max(INITIAL_DELAY, jittered INITIAL_DELAY * 2**(n-1) capped at
    MAX_DELAY) between attempts (0.5 s / 5 s); both are class attributes of stripe.HTTPClient.
    """
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.0)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.0)


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send for `payload`."""
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode("utf-8"), secret, timestamp=timestamp
    )


def signed_event(
    event_type: str,
    data_object: dict[str, Any],
    secret: str,
    timestamp: int | None = None,
    *,
    event_id: str | None = None,
    livemode: bool = False,
) -> tuple[bytes, str]:
    """A Stripe event body and its Stripe-Signature header, as Stripe would POST them."""
    ts = int(time.time()) if timestamp is None else timestamp
    event = {
        "id": event_id or _new_id("evt"),
        "object": "event",
        "api_version": stripe.api_version,
        "created": ts,
        "data": {"object": data_object},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    payload = json.dumps(event, indent=2).encode("utf-8")
    return payload, sign_payload(payload, secret, ts)


# -- form decoding ------------------------------------------------------------------------------

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    return [head, *_KEY_PART.findall("[" + rest)] if rest else [head]


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def parse_stripe_form(body: str) -> dict[str, Any]:
    """`a[b][0][c]=1` -> {"a": {"b": [{"c": "1"}]}}; values stay strings, as on the wire."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = _split_key(key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _listify(root)


# -- server state -------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]  # lower-case names
    body: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class FakeEvent:
    type: str
    payload: bytes
    header: str


class FakeApiError(Exception):
    def __init__(
        self, status: int, message: str, *, type_: str = "invalid_request_error", **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = {"type": type_, "message": message, **extra}


@dataclass
class _Failure:
    status: int
    should_retry: bool | None


@dataclass
class _Idempotent:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: dict[str, Any]


@dataclass
class _SessionExtra:
    line_items: list[dict[str, Any]] = field(default_factory=list)
    # payment_intent_data[metadata]: copied to the PaymentIntent, and so to its charges.
    intent_metadata: dict[str, Any] = field(default_factory=dict)


class FakeStripe:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        webhook_secret: str = "whsec_test_fake",
        webhook_url: str | None = None,
        refund_status: str = "succeeded",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        # If set, each generated event is POSTed there (signed), as Stripe would.
        self.webhook_url = webhook_url
        self.refund_status = refund_status
        self.clock = clock
        self.requests: list[RecordedRequest] = []
        self.events: list[FakeEvent] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self._extra: dict[str, _SessionExtra] = {}
        self._idempotent: dict[str, _Idempotent] = {}
        self._outbox: list[FakeEvent] = []
        self._failures: list[_Failure] = []
        self._delays: list[float] = []
        self._hooks: list[Callable[[], Any]] = []
        self._lost_answers = 0
        self.hanging = False
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        server.handle_error = _quiet_handle_error  # type: ignore[method-assign]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        assert self._server is not None, "FakeStripe not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test controls ------------------------------------------------------------------------

    def fail_next(self, status: int = 500, count: int = 1, *, should_retry: bool | None = None):
        """The next `count` API requests fail with `status` before reaching any endpoint.

        Such failures are not stored under the idempotency key (like a failure in front of
        Stripe's API), so a retry with the same key can succeed. `should_retry` sets Stripe's
        Stripe-Should-Retry header, which the SDK obeys.
        """
        with self._lock:
            self._failures.extend(_Failure(status, should_retry) for _ in range(count))

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """The next `count` API requests stall `seconds` before being handled normally."""
        with self._lock:
            self._delays.extend([seconds] * count)

    def hang(self, hanging: bool = True) -> None:
        """Every API request from now on stalls without an answer (until hang(False) or stop):
        Stripe's side of a network partition or an overloaded load balancer."""
        self.hanging = hanging

    def lose_next_answers(self, count: int = 1) -> None:
        """The next `count` API requests are carried out (and stored under their idempotency
        key), but the connection is dropped before the answer is sent."""
        with self._lock:
            self._lost_answers += count

    def on_next_request(self, hook: Callable[[], Any]) -> None:
        """Run `hook` when the next API request arrives, before it is handled: lets a test
        make something happen exactly while the shop waits for Stripe."""
        with self._lock:
            self._hooks.append(hook)

    def take_lost_answer(self) -> bool:
        with self._lock:
            if self._lost_answers:
                self._lost_answers -= 1
                return True
            return False

    def api_requests(self, method: str | None = None, path: str | None = None):
        """Recorded /v1 requests, optionally only one method and path (prefix match)."""
        return [
            r
            for r in self.requests
            if r.path.startswith("/v1/")
            and (method is None or r.method == method.upper())
            and (path is None or r.path.startswith(path))
        ]

    def complete_session(self, session_id: str, paid: bool = True) -> tuple[bytes, str]:
        """The customer pays: the session completes; returns the signed webhook to post.

        paid=False models an asynchronous payment method: complete but "unpaid" until
        settle_async_payment().
        """
        with self._lock:
            session = self._open_session(session_id)
            intent = self._new_payment_intent(
                session["amount_total"],
                session["currency"],
                succeeded=paid,
                metadata=self._extra[session_id].intent_metadata,
            )
            session.update(
                status="complete",
                payment_status="paid" if paid else "unpaid",
                payment_intent=intent["id"],
                customer_details=json.loads(json.dumps(FAKE_CUSTOMER_DETAILS)),
            )
            signed = self._emit("checkout.session.completed", session)
        self._deliver_webhooks()
        return signed

    def settle_async_payment(self, session_id: str, succeeded: bool = True) -> tuple[bytes, str]:
        with self._lock:
            session = self.sessions[session_id]
            intent = self.payment_intents[session["payment_intent"]]
            if succeeded:
                intent.update(
                    status="succeeded",
                    amount_received=intent["amount"],
                    latest_charge=_new_id("ch"),
                )
                session["payment_status"] = "paid"
                kind = "checkout.session.async_payment_succeeded"
            else:
                intent["status"] = "requires_payment_method"
                kind = "checkout.session.async_payment_failed"
            signed = self._emit(kind, session)
        self._deliver_webhooks()
        return signed

    def expire_session(self, session_id: str) -> tuple[bytes, str]:
        """Stripe's own expiry timer fires."""
        with self._lock:
            session = self._open_session(session_id)
            session["status"] = "expired"
            signed = self._emit("checkout.session.expired", session)
        self._deliver_webhooks()
        return signed

    def update_refund(self, refund_id: str, status: str) -> tuple[bytes, str]:
        """A pending refund settles (or fails): Stripe sends refund.updated."""
        with self._lock:
            refund = self.refunds[refund_id]
            refund["status"] = status
            signed = self._emit("refund.updated", refund)
        self._deliver_webhooks()
        return signed

    def charge_refunded(self, payment_intent: str) -> tuple[bytes, str]:
        """charge.refunded as API versions since 2022-11-15 send it: no embedded refund list."""
        with self._lock:
            intent = self.payment_intents[payment_intent]
            refunded = sum(
                r["amount"]
                for r in self.refunds.values()
                if r["payment_intent"] == payment_intent and r["status"] == "succeeded"
            )
            charge = {
                "id": intent["latest_charge"],
                "object": "charge",
                "amount": intent["amount_received"],
                "amount_refunded": refunded,
                "currency": intent["currency"],
                "payment_intent": payment_intent,
                "refunded": refunded >= intent["amount_received"],
                "metadata": dict(intent["metadata"]),
                "billing_details": {
                    "email": FAKE_CUSTOMER_DETAILS["email"],
                    "name": FAKE_CUSTOMER_DETAILS["name"],
                },
            }
            signed = self._emit("charge.refunded", charge)
        self._deliver_webhooks()
        return signed

    def dispute(self, payment_intent: str) -> tuple[bytes, str]:
        """The cardholder disputes the payment: charge.dispute.created."""
        with self._lock:
            intent = self.payment_intents[payment_intent]
            dispute = {
                "id": _new_id("dp"),
                "object": "dispute",
                "amount": intent["amount_received"],
                "charge": intent["latest_charge"],
                "currency": intent["currency"],
                "payment_intent": payment_intent,
                "reason": "fraudulent",
                "status": "needs_response",
                # Disputes have their own (empty) metadata; the charge's is not copied.
                "metadata": {},
            }
            self.disputes[dispute["id"]] = dispute
            signed = self._emit("charge.dispute.created", dispute)
        self._deliver_webhooks()
        return signed

    def dispute_update(
        self, dispute_id: str, event_type: str, status: str | None = None
    ) -> tuple[bytes, str]:
        """A later stage of a dispute: charge.dispute.funds_withdrawn, .funds_reinstated or
        .closed (with status "won" or "lost")."""
        with self._lock:
            dispute = self.disputes[dispute_id]
            if status is not None:
                dispute["status"] = status
            signed = self._emit(event_type, dispute)
        self._deliver_webhooks()
        return signed

    def create_paid_payment_intent(self, amount: int, currency: str) -> dict[str, Any]:
        """A succeeded PaymentIntent (Stripe units) to refund against, without a session."""
        with self._lock:
            return dict(self._new_payment_intent(amount, currency.lower(), succeeded=True))

    def signed_event(
        self,
        event_type: str,
        data_object: dict[str, Any],
        timestamp: int | None = None,
        *,
        livemode: bool = False,
    ) -> tuple[bytes, str]:
        return signed_event(
            event_type, data_object, self.webhook_secret, timestamp, livemode=livemode
        )

    # -- internals ----------------------------------------------------------------------------

    def _emit(self, event_type: str, obj: dict[str, Any]) -> tuple[bytes, str]:
        payload, header = signed_event(event_type, json.loads(json.dumps(obj)), self.webhook_secret)
        self.events.append(FakeEvent(event_type, payload, header))
        if self.webhook_url:
            self._outbox.append(self.events[-1])
        return payload, header

    def _deliver_webhooks(self) -> None:
        """POST queued events to webhook_url; never under the lock, since the receiving app
        may call back into this server while handling them."""
        with self._lock:
            outbox, self._outbox = self._outbox, []
        for event in outbox:
            request = urllib.request.Request(
                self.webhook_url or "",
                data=event.payload,
                headers={"Content-Type": "application/json", "Stripe-Signature": event.header},
            )
            # On failure Stripe would retry later; tests can re-post from self.events.
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=10).close()

    def _open_session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            raise KeyError(f"no such checkout session {session_id}")
        if session["status"] != "open":
            raise ValueError(f"checkout session {session_id} is {session['status']}")
        return session

    def _new_payment_intent(
        self, amount: int, currency: str, *, succeeded: bool, metadata: dict[str, Any] | None = None
    ):
        intent = {
            "id": _new_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount if succeeded else 0,
            "currency": currency,
            "status": "succeeded" if succeeded else "processing",
            "latest_charge": _new_id("ch") if succeeded else None,
            "metadata": dict(metadata or {}),
            "created": int(self.clock()),
            "livemode": False,
        }
        self.payment_intents[intent["id"]] = intent
        return intent

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _take_delay(self) -> float:
        with self._lock:
            return self._delays.pop(0) if self._delays else 0.0

    def handle_api(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        extra_headers: dict[str, str] = {}
        with self._lock:
            hook = self._hooks.pop(0) if self._hooks else None
        if hook is not None:
            hook()
        while self.hanging and not self._stopping.is_set():
            self._stopping.wait(0.05)
        failure = self._take_failure()
        if failure is not None:
            if failure.should_retry is not None:
                extra_headers["Stripe-Should-Retry"] = str(failure.should_retry).lower()
            return failure.status, _injected_error(failure.status), extra_headers
        delay = self._take_delay()
        if delay:
            self._stopping.wait(delay)

        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            error = FakeApiError(401, "Invalid API Key provided.")
            return error.status, {"error": error.error}, extra_headers

        key = headers.get("idempotency-key") if method == "POST" else None
        with self._lock:
            if key is not None and key in self._idempotent:
                saved = self._idempotent[key]
                if (saved.method, saved.path, saved.params) != (method, path, params):
                    error = FakeApiError(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        f"parameters they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        type_="idempotency_error",
                    )
                    return error.status, {"error": error.error}, extra_headers
                extra_headers["Idempotent-Replayed"] = "true"
                return saved.status, saved.body, extra_headers
            try:
                body = self._route(method, path, params)
            except FakeApiError as error:
                # Stripe saves no idempotent result for requests that fail validation.
                return error.status, {"error": error.error}, extra_headers
            if key is not None:
                self._idempotent[key] = _Idempotent(method, path, params, 200, body)
        self._deliver_webhooks()
        return 200, body, extra_headers

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "checkout", "sessions"]:
            return self._create_session(params)
        if len(parts) == 4 and parts[:3] == ["v1", "checkout", "sessions"] and method == "GET":
            return dict(self._get(self.sessions, "checkout.session", parts[3]))
        if (
            method == "POST"
            and parts[:3] == ["v1", "checkout", "sessions"]
            and parts[4:] == ["expire"]
        ):
            return self._expire_session_api(parts[3])
        if len(parts) == 3 and parts[:2] == ["v1", "payment_intents"] and method == "GET":
            return dict(self._get(self.payment_intents, "payment_intent", parts[2]))
        if method == "POST" and parts == ["v1", "refunds"]:
            return self._create_refund(params)
        if method == "GET" and parts == ["v1", "refunds"]:
            return self._list_refunds(params)
        if len(parts) == 3 and parts[:2] == ["v1", "refunds"] and method == "GET":
            return dict(self._get(self.refunds, "refund", parts[2]))
        raise FakeApiError(404, f"Unrecognized request URL ({method}: {path}).")

    @staticmethod
    def _get(store: dict[str, dict[str, Any]], kind: str, obj_id: str) -> dict[str, Any]:
        if obj_id not in store:
            raise FakeApiError(
                404, f"No such {kind}: '{obj_id}'", code="resource_missing", param="id"
            )
        return store[obj_id]

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - _SESSION_PARAMS)
        if unknown:
            raise FakeApiError(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
        if params.get("mode") != "payment":
            raise FakeApiError(400, "This fake only supports mode=payment.", param="mode")
        if not params.get("success_url"):
            raise FakeApiError(400, "Missing required param: success_url.", param="success_url")
        lines = params.get("line_items")
        if not isinstance(lines, list) or not lines:
            raise FakeApiError(400, "Missing required param: line_items.", param="line_items")

        currencies: set[str] = set()
        subtotal = 0
        for i, line in enumerate(lines):
            price = line.get("price_data", {}) if isinstance(line, dict) else {}
            name = price.get("product_data", {}).get("name") if isinstance(price, dict) else None
            if not name:
                raise FakeApiError(400, "Missing product name.", param=f"line_items[{i}]")
            unit = _int_param(price.get("unit_amount"), f"line_items[{i}][price_data][unit_amount]")
            qty = _int_param(line.get("quantity"), f"line_items[{i}][quantity]")
            currency = price.get("currency", "")
            if unit < 0 or qty < 1:
                raise FakeApiError(400, "Invalid amount or quantity.", param=f"line_items[{i}]")
            _check_granularity(unit, currency, f"line_items[{i}][price_data][unit_amount]")
            currencies.add(currency)
            subtotal += unit * qty

        shipping_cost = None
        shipping_amount = 0
        options = params.get("shipping_options") or []
        if options:
            rate = options[0].get("shipping_rate_data", {})
            fixed = rate.get("fixed_amount", {})
            shipping_amount = _int_param(fixed.get("amount"), "shipping_options[0]")
            _check_granularity(shipping_amount, fixed.get("currency", ""), "shipping_options[0]")
            currencies.add(fixed.get("currency", ""))
            shipping_cost = {
                "amount_subtotal": shipping_amount,
                "amount_tax": 0,
                "amount_total": shipping_amount,
                "shipping_rate": _new_id("shr"),
            }
        if len(currencies) != 1 or not re.fullmatch(r"[a-z]{3}", next(iter(currencies))):
            raise FakeApiError(400, "All prices need one lower-case currency.", param="currency")

        now = int(self.clock())
        expires_at = now + 24 * 3600
        if "expires_at" in params:
            expires_at = _int_param(params["expires_at"], "expires_at")
            if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
                raise FakeApiError(
                    400,
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours "
                    "after Checkout Session creation.",
                    param="expires_at",
                )

        session_id = _new_id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": subtotal,
            "amount_total": subtotal + shipping_amount,
            "billing_address_collection": params.get("billing_address_collection"),
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": currencies.pop(),
            "customer": params.get("customer"),
            "customer_creation": params.get("customer_creation", "if_required"),
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": expires_at,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": params.get("metadata", {}),
            "mode": "payment",
            # Since API version 2022-08-01 the PaymentIntent only exists once the customer pays.
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "shipping_cost": shipping_cost,
            "shipping_options": [
                {
                    "shipping_amount": shipping_amount,
                    "shipping_rate": shipping_cost["shipping_rate"],
                }
            ]
            if shipping_cost
            else [],
            "status": "open",
            "success_url": params.get("success_url"),
            "url": f"{self.api_base}/pay/{session_id}",
        }
        self.sessions[session_id] = session
        intent_data = params.get("payment_intent_data") or {}
        self._extra[session_id] = _SessionExtra(
            line_items=lines, intent_metadata=dict(intent_data.get("metadata") or {})
        )
        return dict(session)

    def _expire_session_api(self, session_id: str) -> dict[str, Any]:
        session = self._get(self.sessions, "checkout.session", session_id)
        if session["status"] != "open":
            raise FakeApiError(
                400,
                f'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{session["status"]}".',
            )
        session["status"] = "expired"
        self._emit("checkout.session.expired", session)
        return dict(session)

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - _REFUND_PARAMS)
        if unknown:
            raise FakeApiError(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise FakeApiError(400, "One of `charge` or `payment_intent` is required.")
        intent = self._get(self.payment_intents, "payment_intent", intent_id)
        if intent["status"] != "succeeded":
            raise FakeApiError(
                400,
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
            )
        already = sum(
            r["amount"]
            for r in self.refunds.values()
            if r["payment_intent"] == intent_id and r["status"] in {"succeeded", "pending"}
        )
        remaining = intent["amount_received"] - already
        amount = _int_param(params["amount"], "amount") if "amount" in params else remaining
        if remaining <= 0:
            raise FakeApiError(
                400, f"Charge {intent['latest_charge']} has already been refunded.",
                code="charge_already_refunded",
            )  # fmt: skip
        if amount <= 0 or amount > remaining:
            raise FakeApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining}).",
                param="amount",
            )
        _check_granularity(amount, intent["currency"], "amount")
        refund = {
            "id": _new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": intent["latest_charge"],
            "created": int(self.clock()),
            "currency": intent["currency"],
            "metadata": params.get("metadata", {}),
            "payment_intent": intent_id,
            "reason": params.get("reason"),
            "status": self.refund_status,
        }
        self.refunds[refund["id"]] = refund
        self._emit("refund.created", refund)
        return dict(refund)

    def _list_refunds(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - {"payment_intent", "charge", "limit", "starting_after"})
        if unknown:
            raise FakeApiError(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
        found = [
            dict(r)
            for r in self.refunds.values()
            if not params.get("payment_intent") or r["payment_intent"] == params["payment_intent"]
        ]
        found.sort(key=lambda r: r["created"], reverse=True)
        return {"object": "list", "data": found, "has_more": False, "url": "/v1/refunds"}

    # -- hosted page --------------------------------------------------------------------------

    def hosted_page(self, session_id: str) -> tuple[int, str]:
        with self._lock:
            session = self.sessions.get(session_id)
            if session is None:
                return 404, "<h1>Something went wrong</h1><p>Unknown Checkout Session.</p>"
            if session["status"] != "open":
                return 200, f"<h1>This Checkout Session is {html.escape(session['status'])}</h1>"
            rows = "".join(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                    html.escape(line["price_data"]["product_data"]["name"]),
                    html.escape(str(line["quantity"])),
                    html.escape(str(line["price_data"]["unit_amount"])),
                )
                for line in self._extra[session_id].line_items
            )
            total = f"{session['amount_total']} {session['currency'].upper()}"
            cancel = html.escape(session["cancel_url"] or "")
        return 200, (
            "<!doctype html><title>Fake Stripe Checkout</title>"
            f"<h1>Pay {html.escape(total)}</h1><table>{rows}</table>"
            f'<form method="post" action="/pay/{html.escape(session_id)}">'
            '<button type="submit" name="outcome" value="paid">Pay</button></form>'
            f'<a href="{cancel}">Cancel</a>'
        )

    def pay(self, session_id: str, outcome: str) -> str | None:
        """Complete the session from the hosted page; the success URL to redirect to."""
        with self._lock:
            session = self.sessions.get(session_id)
            if session is None or session["status"] != "open":
                return None
            url = session["success_url"] or ""
        try:
            self.complete_session(session_id, paid=outcome != "processing")
        except ValueError:  # paid twice at once: the other request won
            return None
        return url.replace("{CHECKOUT_SESSION_ID}", session_id)


def _int_param(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FakeApiError(400, f"Invalid integer: {value}", param=name) from None


def _check_granularity(amount: int, currency: str, param: str) -> None:
    if currency in _THREE_DECIMAL and amount % 10:
        raise FakeApiError(
            400,
            f"Amounts in {currency.upper()} must be divisible by 10.",
            param=param,
            code="invalid_amount",
        )


def _injected_error(status: int) -> dict[str, Any]:
    if status == 429:
        error = {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "Too many requests hit the API too quickly.",
        }
    elif status >= 500:
        error = {"type": "api_error", "message": "Something went wrong on Stripe's end."}
    elif status == 402:
        error = {
            "type": "card_error",
            "code": "card_declined",
            "message": "Your card was declined.",
        }
    else:
        error = {"type": "invalid_request_error", "message": "Simulated invalid request."}
    return {"error": error}


def _quiet_handle_error(request: Any, client_address: Any) -> None:
    # Clients that timed out close their socket before we answer; that is expected here.
    pass


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeStripe/1.0"

    @property
    def fake(self) -> FakeStripe:
        return self.server.fake  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode("utf-8") if length else ""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body() if method == "POST" else ""
        params = parse_stripe_form(body if method == "POST" else url.query)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake.requests.append(RecordedRequest(method, url.path, params, headers, body))

        if url.path.startswith("/pay/"):
            self._hosted(method, url.path.removeprefix("/pay/"), params)
            return
        status, payload, extra = self.fake.handle_api(method, url.path, params, headers)
        if self.fake.take_lost_answer():
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        self._send(
            status,
            json.dumps(payload, indent=2).encode("utf-8"),
            {
                "Content-Type": "application/json",
                "Request-Id": _new_id("req"),
                "Stripe-Version": headers.get("stripe-version", stripe.api_version),
                **extra,
            },
        )

    def _hosted(self, method: str, session_id: str, params: dict[str, Any]) -> None:
        if method == "GET":
            status, page = self.fake.hosted_page(session_id)
            self._send(status, page.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})
            return
        target = self.fake.pay(session_id, str(params.get("outcome", "paid")))
        if target is None:
            self._send(409, b"session is not open", {"Content-Type": "text/plain"})
            return
        self._send(303, b"", {"Location": target})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")
