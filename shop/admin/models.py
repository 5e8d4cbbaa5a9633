"""Merchant accounts and their sign-in throttle.

Merchant accounts are staff, not customers: no customer data lives here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, UTCDateTime, personal, utcnow


class AdminUser(Base):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    # Base32 TOTP secret; set while enrolling, active once `totp_enabled` after a correct code.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last accepted TOTP time step, so a code seen once cannot be replayed.
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Bumped on logout and password change: every session cookie carrying an older value dies.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recovery_codes: Mapped[list[AdminRecoveryCode]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="AdminRecoveryCode.id"
    )


class AdminRecoveryCode(Base):
    __tablename__ = "admin_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("admin_users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[AdminUser] = relationship(back_populates="recovery_codes")


class SigninFailure(Base):
    """A failed merchant sign-in, counted by shop/admin/throttle.py; deleted after a day.

    ``key`` is ``user:<name>``, ``code:<name>`` or ``client:<tag>``, the tag a keyed hash of the
    client's address under a key that changes daily: no IP address is stored.
    """

    __tablename__ = "signin_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), index=True, info=personal())
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
