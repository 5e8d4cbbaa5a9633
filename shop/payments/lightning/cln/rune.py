"""What a Core Lightning rune allows, read from the rune itself (no node needed).

A rune is base64url: a 32-byte authentication code (the node checks it; we cannot and need not)
followed by its restrictions as text. Restrictions are separated by `&` and must all pass; each
is alternatives separated by `|`, one of which must pass; an alternative is a field name, an
operator and a value (`method=invoice`), with `\\` escaping `&`, `|` and `\\` in values. The
shop accepts a rune only if one restriction consists of nothing but `method=<name>` for the
invoice methods it uses: whatever else the rune says can only narrow that. `method^invoice` is
refused: it would also allow `invoicerequest`, which sends money.
"""

from __future__ import annotations

import base64
import binascii
import re

# What the shop calls: make invoices, read them, wait for payments, the node's state.
INVOICE_METHODS = frozenset(
    {"invoice", "listinvoices", "waitanyinvoice", "getinfo", "listpeerchannels"}
)
OPERATORS = "!=/^$~<>{}#"
_FIELD = re.compile(r"[A-Za-z0-9_]*")
HOW_TO = (
    "make one with: lightning-cli createrune restrictions='[["
    + ",".join(f'"method={m}"' for m in sorted(INVOICE_METHODS))
    + "]]'"
)


class RuneError(ValueError):
    """The rune cannot be read, or could do more than invoices."""


def restrictions(rune: str) -> list[list[tuple[str, str, str]]]:
    """[[(field, operator, value), ...alternatives], ...restrictions]"""
    text = rune.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise RuneError("not a rune (it is not base64url)") from None
    if len(raw) < 32:
        raise RuneError("not a rune (too short)")
    try:
        body = raw[32:].decode("utf-8")
    except UnicodeDecodeError:
        raise RuneError("not a rune (its restrictions are not text)") from None
    return [[_alternative(a) for a in _split(r, "|")] for r in _split(body, "&") if r]


def _split(text: str, sep: str) -> list[str]:
    """Split at unescaped `sep`, keeping escapes for the next level."""
    parts, current, i = [], "", 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if char == sep:
            parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    parts.append(current)
    return parts


def _alternative(text: str) -> tuple[str, str, str]:
    field = _FIELD.match(text).group()  # type: ignore[union-attr]  # `*`: always matches
    rest = text[len(field) :]
    if not rest or rest[0] not in OPERATORS:
        raise RuneError(f"not a rune (cannot read the restriction {text!r})")
    return field, rest[0], re.sub(r"\\(.)", r"\1", rest[1:])


def allowed_methods(rune: str) -> frozenset[str] | None:
    """The methods the rune is limited to, or None when no restriction limits the method to
    a list of names (the rune could call anything)."""
    best: frozenset[str] | None = None
    for alternatives in restrictions(rune):
        if all(field == "method" and op == "=" for field, op, _ in alternatives):
            names = frozenset(value for _, _, value in alternatives)
            best = names if best is None else best & names
    return best


def check(rune: str) -> frozenset[str]:
    """The rune's methods, if they are invoice methods only; raises RuneError otherwise."""
    methods = allowed_methods(rune)
    if methods is None:
        raise RuneError(
            "the rune is not restricted to invoice methods (it could also move money); " + HOW_TO
        )
    extra = sorted(methods - INVOICE_METHODS)
    if extra:
        raise RuneError(
            f"the rune also allows {', '.join(extra)}; the shop needs only invoice methods: "
            + HOW_TO
        )
    missing = sorted(INVOICE_METHODS - methods)
    if missing:
        raise RuneError(f"the rune does not allow {', '.join(missing)}; " + HOW_TO)
    return methods
