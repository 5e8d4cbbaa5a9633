"""What each running `shop worker` process says about itself: no personal data, only
where it runs, since when, when it last ticked and what it is doing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, UTCDateTime


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(120), primary_key=True)  # host:pid:random
    host: Mapped[str] = mapped_column(String(100))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_beat: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The job running at the last beat ("" between ticks) and every job this worker runs.
    current_job: Mapped[str] = mapped_column(String(60))
    jobs: Mapped[str] = mapped_column(String(500))
    # Holds the chain watcher's advisory lock (on PostgreSQL only one worker does).
    watching_chain: Mapped[bool] = mapped_column(Boolean)
    # What else it follows and listens to now, holding the lock for it (the payment methods'
    # listeners, e.g. "the Lightning node"), comma-separated; "" for none.
    listening: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Set by a clean exit: the row stays so the admin can say when the last worker stopped.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
