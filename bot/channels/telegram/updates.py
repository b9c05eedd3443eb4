"""Telegram updates to Inbound: messages, commands, deep links, button presses, blocks and unblocks.

Only private chats are handled: a message in a group, or the bot being added to one, gives None
(the bot talks with followers one to one, like the other channels).
"""

from __future__ import annotations

from telegram import CallbackQuery, ChatMemberUpdated, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, MessageEntityType

from bot.core.inbound import Inbound, Kind, utcnow

from .render import DEEP_LINK_PAYLOAD

# What the bot asks Telegram for; anything else is not delivered at all.
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")


def update_to_inbound(update: Update, *, channel: str, account: str) -> Inbound | None:
    """Return the Inbound for one update, or None when it is not for the router (groups, edits...)."""
    if update.message is not None:
        return _from_message(update.message, channel=channel, account=account)
    if update.callback_query is not None:
        return _from_callback(update.callback_query, channel=channel, account=account)
    if update.my_chat_member is not None:
        return _from_member(update.my_chat_member, update.update_id, channel=channel, account=account)
    return None


def _from_message(message: Message, *, channel: str, account: str) -> Inbound | None:
    user = message.from_user
    if message.chat.type != ChatType.PRIVATE or user is None or user.is_bot:
        return None
    kind, text, payload = _classify(message)
    return Inbound(
        channel=channel, account=account, external_id=str(message.chat.id), kind=kind, text=text,
        payload=payload, message_id=f"{message.chat.id}:{message.message_id}",
        received_at=message.date or utcnow(), language_hint=user.language_code,
        display_name=user.full_name[:128] or None, raw=message,
    )


def _classify(message: Message) -> tuple[Kind, str, str | None]:
    if message.text is not None:
        text = message.text
        first = message.entities[0] if message.entities else None
        if first is not None and first.type == MessageEntityType.BOT_COMMAND and first.offset == 0:
            head, _sep, rest = text.partition(" ")
            command = head[1:].split("@", 1)[0].lower()
            arg = rest.strip()
            # t.me/<bot>?start=<payload> arrives as "/start <payload>": Telegram's scene QR.
            if command == "start" and arg and DEEP_LINK_PAYLOAD.fullmatch(arg):
                return Kind.SCAN, text, arg
            return Kind.COMMAND, text, None
        return Kind.TEXT, text, None
    caption = message.caption or ""
    if message.photo:
        return Kind.IMAGE, caption, None
    if message.voice is not None:
        return Kind.VOICE, caption, None
    if message.location is not None:
        return Kind.LOCATION, "", None
    return Kind.UNKNOWN, caption, None  # stickers, documents, video, contacts...


def _from_callback(query: CallbackQuery, *, channel: str, account: str) -> Inbound | None:
    message = query.message
    if message is not None and message.chat.type != ChatType.PRIVATE:
        return None
    if query.data is None:  # a game button: nothing for the router
        return None
    chat_id = message.chat.id if message is not None else query.from_user.id
    return Inbound(
        channel=channel, account=account, external_id=str(chat_id), kind=Kind.CLICK, payload=query.data,
        message_id=f"cb:{query.id}", language_hint=query.from_user.language_code,
        display_name=query.from_user.full_name[:128] or None, raw=query,
    )


def _from_member(change: ChatMemberUpdated, update_id: int, *, channel: str, account: str) -> Inbound | None:
    if change.chat.type != ChatType.PRIVATE:
        return None
    old, new = change.old_chat_member.status, change.new_chat_member.status
    if new == ChatMemberStatus.BANNED:  # "kicked": the user blocked the bot
        kind = Kind.UNFOLLOW
    elif new == ChatMemberStatus.MEMBER and old in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        kind = Kind.FOLLOW  # unblocked ("Restart")
    else:
        return None
    return Inbound(
        channel=channel, account=account, external_id=str(change.chat.id), kind=kind,
        message_id=f"u:{update_id}", received_at=change.date or utcnow(),
        language_hint=change.from_user.language_code, display_name=change.from_user.full_name[:128] or None,
        raw=change,
    )
