"""Sending one message through the SMTP server named by SHOP_SMTP_URL (smtplib, no Flask).

smtp://user:pass@host:25            plain (only sensible for a relay on this machine)
smtp+starttls://user:pass@host:587  STARTTLS, certificate verified
smtps://user:pass@host:465          TLS from the first byte, certificate verified
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

SCHEMES = {"smtp": ("none", 25), "smtp+starttls": ("starttls", 587), "smtps": ("ssl", 465)}


class SmtpUrlError(ValueError):
    pass


class SendError(Exception):
    """Sending failed. `permanent` when retrying cannot help (recipient refused, 5xx)."""

    def __init__(self, summary: str, permanent: bool = False):
        self.summary, self.permanent = summary, permanent
        super().__init__(summary)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str = ""
    password: str = ""
    timeout: float = 30.0

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_smtp_url(url: str) -> SmtpConfig:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SmtpUrlError(f"SHOP_SMTP_URL is not a valid URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise SmtpUrlError("SHOP_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
    if not parts.hostname:
        raise SmtpUrlError("SHOP_SMTP_URL needs a host name")
    security, default_port = SCHEMES[parts.scheme]
    return SmtpConfig(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def send(config: SmtpConfig, message: EmailMessage, context: ssl.SSLContext | None = None) -> None:
    """Deliver `message`; raise SendError without the server's words (they may echo addresses)."""
    context = context or ssl.create_default_context()
    try:
        if config.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout, context=context
            )
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        with client:
            if config.security == "starttls":
                client.starttls(context=context)
            if config.username:
                client.login(config.username, config.password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused:
        raise SendError("recipient refused", permanent=True) from None
    except smtplib.SMTPResponseException as exc:
        # A rejected message is final; a refused login or sender is the merchant's setup to fix,
        # so those are retried.
        raise SendError(
            f"{type(exc).__name__} {exc.smtp_code}",
            permanent=isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(type(exc).__name__) from None
