"""Customer email settings (SHOP_SMTP_URL, SHOP_MAIL_FROM), validated at start-up.

`validate` is composed into shop.config's checks and gets the whole Settings; nothing here imports
shop.config at run time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shop.mail.smtp import SmtpUrlError, parse_smtp_url

if TYPE_CHECKING:
    from shop.config import Settings


def validate(s: Settings) -> list[str]:
    problems: list[str] = []
    if not s.smtp_url:
        return problems
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
