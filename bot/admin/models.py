"""Tables of the admin part: operators, their API tokens, the audit log (migration 0015)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, BigId

__all__ = ["AuditEntry", "ConsoleSession", "Operator", "OperatorToken"]


class Operator(Base):
    """A person who runs the bot: a login name, a role, an argon2 password hash; disabled, never deleted
    (the audit log keeps naming them)."""

    __tablename__ = "operator"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Bumped by every ORM update; an edit based on an older version fails (HTTP 409) instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class OperatorToken(Base):
    """An API token: only its SHA-256 is stored; ``prefix`` (its first characters) lets people tell them apart."""

    __tablename__ = "operator_token"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One operator write: who (``actor``, and the operator's id when it is one), what, when, before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    operator_id: Mapped[int | None] = mapped_column(BigId)  # no foreign key: the log outlives what it names
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(160))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ConsoleSession(Base):
    """A signed-in browser of the console (migration 0017): only the SHA-256 of its cookie is stored.

    Every request reads it with its operator, so a disabled operator (or a session signed out) stops at once.
    """

    __tablename__ = "console_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operator.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))  # sent back with every form of this session
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
