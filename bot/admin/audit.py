"""Who did what, when: the actor of every operator write, and the audit log rows written with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow

from .models import AuditEntry
from .roles import Permission, Role, allows


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: an operator (``operator_id``), the bootstrap admin token, or the CLI's user."""

    name: str
    role: Role
    operator_id: int | None = None

    def may(self, permission: Permission) -> bool:
        return allows(self.role, permission)


# The person at the terminal can read the database anyway: the CLI acts as an admin.
CLI_ACTOR = Actor("cli", Role.ADMIN)
BOOTSTRAP_ACTOR = Actor("bootstrap-token", Role.ADMIN)


def jsonable(value: Any) -> Any:
    """``value`` as JSON can store it (times as ISO 8601 text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


async def record(session: AsyncSession, actor: Actor, action: str, target: str, *,
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> AuditEntry:
    """Add one audit row to the caller's transaction: it commits (or rolls back) with the write it describes."""
    entry = AuditEntry(at=utcnow(), actor=actor.name[:80], operator_id=actor.operator_id, action=action,
                       target=target[:160], before=jsonable(before), after=jsonable(after))
    session.add(entry)
    return entry


async def list_entries(session: AsyncSession, *, limit: int, before_id: int | None = None,
                       action: str | None = None, actor: str | None = None) -> Sequence[AuditEntry]:
    """Newest first; ``before_id`` pages on."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    return (await session.execute(query)).scalars().all()
