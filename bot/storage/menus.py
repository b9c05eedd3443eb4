"""The stored menu (``menu_definition``): saved by ``engagebot menu load``, read by ``menu show`` and by the
Telegram channel when it (re)connects, so a restart pushes the loaded commands again, not the built-in ones."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.core.menu import Menu

from .models import MenuDefinition

DEFAULT = "default"


async def save_menu(session: AsyncSession, menu: Menu) -> None:
    """Store ``menu`` as the brand's menu (replacing the one before); its pushes are recorded later."""
    row = await session.get(MenuDefinition, DEFAULT)
    if row is None:
        session.add(MenuDefinition(name=DEFAULT, definition=menu.to_json(), pushed={}, loaded_at=utcnow()))
    else:
        row.definition, row.pushed, row.loaded_at = menu.to_json(), {}, utcnow()
    await session.flush()


async def record_pushes(session: AsyncSession, pushed: dict[str, Any]) -> None:
    """Keep what each platform said to the latest push (``{"wechat": {"ok": true, "detail": ...}}``)."""
    row = await session.get(MenuDefinition, DEFAULT)
    if row is not None:
        row.pushed = {**row.pushed, **pushed}


async def load_menu(session: AsyncSession) -> tuple[Menu, dict[str, Any], datetime] | None:
    """The stored menu, what each platform said to its last push, and when it was loaded; None if none."""
    row = (await session.execute(select(MenuDefinition).where(MenuDefinition.name == DEFAULT))).scalar_one_or_none()
    if row is None:
        return None
    return Menu.from_json(row.definition), dict(row.pushed), row.loaded_at
