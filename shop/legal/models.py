"""The legal pages an EU web shop must publish, written by the merchant in the admin."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, UTCDateTime, utcnow


class LegalPage(Base):
    __tablename__ = "legal_pages"

    # imprint, terms, withdrawal, privacy
    slug: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[str] = mapped_column(Text, default="")
    # The imprint's fields (legal name, address, VAT ID, ...) as JSON: the business's, not a customer's.
    data: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
