"""Merchant accounts: argon2id passwords, optional TOTP with recovery codes, login throttling.

No Flask here: the views call these functions with the request's session.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shop.admin.models import AdminRecoveryCode, AdminUser
from shop.db import utcnow

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
RECOVERY_CODES = 10

# argon2-cffi's defaults are RFC 9106's low-memory argon2id profile.
_hasher = PasswordHasher()
# Verified against when the username is unknown, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AdminError(Exception):
    """Base of the named admin account errors."""


class InvalidUsername(AdminError):
    def __init__(self) -> None:
        super().__init__(
            "A user name is 1–64 lower-case letters, digits, dots, dashes or "
            "underscores, starting with a letter or digit."
        )


class WeakPassword(AdminError):
    def __init__(self) -> None:
        super().__init__(
            f"The password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long."
        )


class UserExists(AdminError):
    def __init__(self, username: str) -> None:
        super().__init__(f"A merchant account named {username!r} already exists.")


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def hash_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise WeakPassword()
    return _hasher.hash(password)


def create_user(session: Session, username: str, password: str) -> AdminUser:
    username = normalize_username(username)
    if not USERNAME_RE.fullmatch(username):
        raise InvalidUsername()
    # Hash before the first query: the slow part runs outside any transaction (and lock).
    password_hash = hash_password(password)
    if session.scalar(
        select(func.count()).select_from(AdminUser).where(AdminUser.username == username)
    ):
        raise UserExists(username)
    user = AdminUser(username=username, password_hash=password_hash)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: AdminUser, password: str) -> None:
    user.password_hash = hash_password(password)
    user.session_version += 1


def authenticate(session: Session, username: str, password: str) -> AdminUser | None:
    """The active user with this name and password, or None (same work either way)."""
    username = normalize_username(username)
    user = (
        session.scalar(select(AdminUser).where(AdminUser.username == username))
        if USERNAME_RE.fullmatch(username)
        else None
    )
    if len(password or "") > MAX_PASSWORD_LENGTH:
        return None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


# ---------------------------------------------------------------- second factor


def begin_totp(user: AdminUser) -> str:
    """A fresh secret for enrolment; TOTP stays off until `confirm_totp` sees a valid code."""
    if user.totp_enabled:
        raise AdminError("Two-factor authentication is already on.")
    user.totp_secret = pyotp.random_base32()
    return user.totp_secret


def provisioning_uri(user: AdminUser, issuer: str) -> str:
    return pyotp.TOTP(user.totp_secret or "").provisioning_uri(
        name=user.username, issuer_name=issuer
    )


def _totp_step(user: AdminUser, code: str, at: float | None = None) -> int | None:
    """The time step the code belongs to (±1 step of clock drift), or None."""
    code = re.sub(r"\s", "", code or "")
    if not user.totp_secret or not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(user.totp_secret)
    now = time.time() if at is None else at
    for drift in (0, -1, 1):
        step = int(now // totp.interval) + drift
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def confirm_totp(
    session: Session, user: AdminUser, code: str, at: float | None = None
) -> list[str]:
    """Turn TOTP on after a correct code; returns the recovery codes, shown once."""
    step = _totp_step(user, code, at)
    if step is None:
        raise AdminError("That code is not correct. Check the time on your device and try again.")
    user.totp_enabled = True
    user.totp_last_step = step
    return new_recovery_codes(session, user)


def disable_totp(session: Session, user: AdminUser) -> None:
    user.totp_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    for code in list(user.recovery_codes):
        session.delete(code)


def verify_totp(user: AdminUser, code: str, at: float | None = None) -> bool:
    """A correct code not used before (each step is accepted once, so a seen code is useless)."""
    step = _totp_step(user, code, at)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _code_hash(code: str) -> str:
    # Recovery codes are 80 random bits, not passwords: a plain SHA-256 cannot be brute-forced.
    return hashlib.sha256(re.sub(r"[\s-]", "", code.lower()).encode()).hexdigest()


def new_recovery_codes(session: Session, user: AdminUser) -> list[str]:
    for old in list(user.recovery_codes):
        session.delete(old)
    session.flush()
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(10)
        codes.append("-".join(raw[i : i + 5] for i in range(0, 20, 5)))
    user.recovery_codes = [AdminRecoveryCode(code_hash=_code_hash(c)) for c in codes]
    return codes


def use_recovery_code(session: Session, user: AdminUser, code: str) -> bool:
    if not code or len(code) > 64:
        return False
    match = session.scalar(
        select(AdminRecoveryCode).where(
            AdminRecoveryCode.user_id == user.id,
            AdminRecoveryCode.code_hash == _code_hash(code),
            AdminRecoveryCode.used_at.is_(None),
        )
    )
    if match is None:
        return False
    match.used_at = utcnow()
    return True


def remaining_recovery_codes(user: AdminUser) -> int:
    return sum(1 for c in user.recovery_codes if c.used_at is None)
