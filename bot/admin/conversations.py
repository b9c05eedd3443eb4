"""The inbox in the admin API: :class:`~bot.admin.inbox.Inbox` (the CLI's service too) acting for the
authenticated operator, each take, reply and release audited in the transaction that makes it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.capabilities import Capabilities
from bot.delivery.sender import channel_key
from bot.i18n import N_, Catalogs, default_catalogs
from bot.settings import Settings

from .audit import CLI_ACTOR, Actor, record
from .errors import Forbidden, Invalid
from .handoff import HandoffChange, Record
from .inbox import Deliver, Inbox, QueuedReply
from .operators import get_operator
from .roles import Permission, Role

log = logging.getLogger("engagebot.admin.inbox")


def channel_capabilities(channels: Sequence[Any]) -> dict[str, Capabilities]:
    """What each of the app's channels declares (its reply window), by channel name."""
    return {channel_key(c)[0]: c.capabilities for c in channels if getattr(c, "capabilities", None) is not None}


def channel_deliver(channels: Sequence[Any]) -> Deliver:
    """Send outbox rows now through the app's own sender of that channel account, when it has one.

    A send that fails here is not the caller's failure: the row stays in the outbox and the account's
    sweeper (or retries) sends it, as any other row.
    """
    async def deliver(channel: str, account: str, message_ids: Sequence[int]) -> None:
        for c in channels:
            outbox = getattr(c, "outbox", None)
            if outbox is not None and channel_key(c) == (channel, account):
                try:
                    await outbox.deliver(list(message_ids))
                except Exception:
                    log.warning("agent reply left to the outbox sweeper", exc_info=True,
                                extra={"channel": channel, "rows": len(message_ids)})
                return

    return deliver


def inbox_for(settings: Settings, sessions: async_sessionmaker[AsyncSession], channels: Sequence[Any], *,
              catalogs: Catalogs | None = None, deliver: Deliver | None = None) -> Inbox:
    return Inbox(sessions, catalogs or default_catalogs(), channel_capabilities(channels),
                 default_locale=settings.default_locale, international_locale=settings.international_locale,
                 timeout=timedelta(seconds=settings.handoff_timeout), deliver=deliver)


def agent_id(actor: Actor) -> str:
    """The agent id an operator acts under: their login name (the bootstrap token's name for it)."""
    return actor.name


async def terminal_agent(sessions: async_sessionmaker[AsyncSession], operator: str | None,
                         agent: str | None) -> tuple[Actor, str]:
    """Who acts from ``engagebot inbox`` (the audit's actor) and under which agent id.

    ``--operator NAME``: an enabled operator whose role holds inbox.write; the agent id is their name.
    Without it, the terminal's user (``cli``, as every other command) under the ``--agent`` given.
    """
    if operator is None:
        if agent is None:
            raise Invalid("--agent", N_("give --operator NAME (an operator account) or --agent ID"))
        return CLI_ACTOR, agent
    async with sessions() as session:
        op = await get_operator(session, operator)
    if op.disabled_at is not None:
        raise Forbidden(N_("operator {name!r} is disabled"), name=op.name)
    actor = Actor(op.name, Role(op.role), op.id)
    if not actor.may(Permission.INBOX_WRITE):
        raise Forbidden(N_("operator {name!r}: the {role} role may not {permission}"), name=op.name,
                        role=actor.role.value, permission=Permission.INBOX_WRITE.value)
    if agent is not None and agent != op.name:
        raise Invalid("--agent", N_("operator {name!r} acts as agent {name!r}; leave --agent out"), name=op.name)
    return actor, op.name


def _audit(actor: Actor, action: str, follower_id: int, after: dict[str, Any]) -> Record:
    async def add(session: AsyncSession) -> None:
        await record(session, actor, action, f"conversation:{follower_id}", after=after)

    return add


async def take(inbox: Inbox, actor: Actor, follower_id: int, *, agent: str | None = None) -> HandoffChange:
    agent = agent or agent_id(actor)
    return await inbox.take(follower_id, agent,
                            record=_audit(actor, "conversation.take", follower_id, {"agent": agent}))


async def release(inbox: Inbox, actor: Actor, follower_id: int, *, force: bool = False,
                  agent: str | None = None) -> HandoffChange:
    if force and not actor.may(Permission.INBOX_MANAGE):
        raise Forbidden(N_("the {role} role may not release another agent's conversation (force)"),
                        role=actor.role.value)
    agent = agent or agent_id(actor)
    return await inbox.release(follower_id, agent, force=force, record=_audit(
        actor, "conversation.release", follower_id, {"agent": agent, "force": force}))


async def reply(inbox: Inbox, actor: Actor, follower_id: int, text: str, *, agent: str | None = None) -> QueuedReply:
    agent = agent or agent_id(actor)
    return await inbox.reply(follower_id, agent, text, record=_audit(
        actor, "conversation.reply", follower_id, {"agent": agent, "text": text}))


async def dismiss(inbox: Inbox, actor: Actor, follower_id: int, *, agent: str | None = None) -> bool:
    """Clear a follower's owed answer (the queue timed out, nobody answered): audited when it changes."""
    agent = agent or agent_id(actor)
    return await inbox.dismiss(follower_id, agent, record=_audit(actor, "conversation.dismiss", follower_id,
                                                                  {"agent": agent}))
