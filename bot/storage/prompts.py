"""Prompt-rule queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow

from .models import PromptRule


async def list_prompt_rules(session: AsyncSession) -> Sequence[PromptRule]:
    return (await session.execute(select(PromptRule).order_by(PromptRule.priority.desc(), PromptRule.name))).scalars().all()


async def replace_prompt_rules(session: AsyncSession, rules: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Insert or replace rules by name in the caller's transaction; return (added, replaced)."""
    names = [r["name"] for r in rules]
    existing = {r.name: r for r in (await session.execute(select(PromptRule).where(PromptRule.name.in_(names)))).scalars()}
    now = utcnow()
    added = replaced = 0
    for spec in rules:
        row = existing.get(spec["name"])
        if row is None:
            session.add(PromptRule(updated_at=now, **spec))
            added += 1
        else:
            for key, value in spec.items():
                setattr(row, key, value)
            row.updated_at = now
            replaced += 1
    return added, replaced
