"""The consent to immediate delivery of digital content, by wording version. No Flask.

§ 356 (5) BGB (Art. 16 (m) Directive 2011/83/EU): the right of withdrawal for digital content
ends early only if the customer expressly agreed that delivery starts before the withdrawal
period ends and acknowledged losing the right. The order keeps which wording was agreed to; a
changed wording is a new version, never an edit of an old one.
"""

from __future__ import annotations

from datetime import timedelta

from shop.i18n import N_

VERSION = "2026-12-02"
WORDINGS = {
    VERSION: N_(
        "I agree that delivery of the digital content starts now, before the withdrawal "
        "period ends, and I acknowledge that I thereby lose my right of withdrawal."
    ),
}
# Without the consent, the customer may withdraw for 14 days after the contract (§ 355 (2) BGB).
WITHDRAWAL_PERIOD = timedelta(days=14)
REFUSE, DELAY = "refuse", "delay"


def wording(version: str | None) -> str:
    return WORDINGS.get(version or "", "")
