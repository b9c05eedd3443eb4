"""The brand's stores (migration 0012): loaded from a file, read when a follower shares a location."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, BigId


class Store(Base):
    """One store; coordinates in WGS-84 whatever the file's datum; names, addresses and hours in ``details``."""

    __tablename__ = "store"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]
