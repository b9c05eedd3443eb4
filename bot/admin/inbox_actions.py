"""An operator's inbox actions (take, reply, hand back), audited like every other operator write.

``Inbox`` (lane B's service) changes the conversation; the audit row names the operator and what
changed. The agent id is the operator's login name, so the inbox shows who has a conversation.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .audit import Actor, record
from .errors import AdminError
from .inbox import Inbox, QueuedReply
from .roles import Permission

__all__ = ["Forbidden", "release", "reply", "take"]


class Forbidden(AdminError):
    """The operator's role may not answer followers."""

    http_status = 403


def _check(actor: Actor) -> str:
    if not actor.may(Permission.INBOX_WRITE):
        raise Forbidden(f"the {actor.role} role may not {Permission.INBOX_WRITE}")
    return actor.name


async def _audit(sessions: async_sessionmaker[AsyncSession], actor: Actor, action: str, follower_id: int,
                 after: dict[str, object]) -> None:
    # Written once the change is committed: the inbox's own transaction is one conditional UPDATE.
    async with sessions() as session:
        await record(session, actor, action, f"conversation:{follower_id}", after=after)
        await session.commit()


async def take(inbox: Inbox, actor: Actor, follower_id: int) -> None:
    change = await inbox.take(follower_id, _check(actor))
    await _audit(inbox.sessions, actor, "conversation.take", follower_id,
                 {"agent": actor.name, "told_message_id": change.told_message_id})


async def reply(inbox: Inbox, actor: Actor, follower_id: int, text: str) -> QueuedReply:
    queued = await inbox.reply(follower_id, _check(actor), text)
    await _audit(inbox.sessions, actor, "conversation.reply", follower_id,
                 {"message_id": queued.message_id, "text": text})
    return queued


async def release(inbox: Inbox, actor: Actor, follower_id: int) -> None:
    await inbox.release(follower_id, _check(actor))
    await _audit(inbox.sessions, actor, "conversation.release", follower_id, {"agent": actor.name})
