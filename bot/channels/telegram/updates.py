"""Telegram updates to Inbound: messages, commands, deep links, button presses, blocks and unblocks.

Only private chats are handled: a message in a group gives None (the bot talks with followers one
to one, like the other channels). What Telegram reports rather than what a follower says (a service
message such as a pin, an edited message, the bot added to a group) is a NOTIFICATION: recorded,
never answered.

Every field used is checked first (``bot.channels.fields``): ids must be 63-bit integers, text and
names are bounded and cleaned (NUL -> U+FFFD), a malformed one raises ``PayloadError`` naming it.
"""

from __future__ import annotations

from telegram import CallbackQuery, ChatMemberUpdated, Message, Update, User
from telegram.constants import ChatMemberStatus, ChatType, MessageEntityType

from bot.channels import fields as check
from bot.core.clock import utcnow
from bot.core.inbound import Inbound, Kind, Notice

from .render import DEEP_LINK_PAYLOAD

# What the bot asks Telegram for; anything else is not delivered at all.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
# What a follower may send; a private message with none of these is a service message (a pin, a
# payment, access granted...): Telegram's report, not something said.
_CONTENT = ("text", "caption", "photo", "voice", "location", "sticker", "document", "video", "video_note",
            "audio", "animation", "contact", "venue", "poll", "dice", "game", "story", "invoice", "paid_media")
_SERVICE = ("pinned_message", "write_access_allowed", "users_shared", "chat_shared", "successful_payment",
            "refunded_payment", "message_auto_delete_timer_changed", "connected_website",
            "proximity_alert_triggered", "chat_background_set", "gift", "unique_gift")

MAX_TEXT = 4096  # a message's text, and a caption (Premium users get 4096 there too)
MAX_NAME = 256  # first and last name each (Telegram's apps allow 64; a margin, not a promise)
MAX_USERNAME = 64  # 5..32 of [A-Za-z0-9_] in practice
MAX_CALLBACK_DATA = 64  # Telegram's limit (bytes; characters here, never more than bytes)
MAX_QUERY_ID = 64  # callback query ids are about 19 digits


def _display_name(user: User) -> str | None:
    """The follower's name to store: first and last name checked and cleaned, at most 128 characters."""
    first = check.text("first_name", user.first_name or "", max_length=MAX_NAME)
    last = check.text("last_name", user.last_name or "", max_length=MAX_NAME)
    check.identifier("username", user.username or "", max_length=MAX_USERNAME, required=False)
    check.number("user.id", user.id)
    return " ".join(part for part in (first, last) if part)[: check.MAX_DISPLAY_NAME] or None


def _language(user: User) -> str | None:
    code = check.identifier("language_code", user.language_code or "", max_length=check.MAX_LANGUAGE_HINT,
                            required=False)
    return code or None


def _chat_id(chat_id: int) -> str:
    return str(check.number("chat.id", chat_id))


def update_to_inbound(update: Update, *, channel: str, account: str) -> Inbound | None:
    """Return the Inbound for one update, or None when it is not for the router (groups, edits...)."""
    if update.message is not None:
        return _from_message(update.message, channel=channel, account=account)
    if update.edited_message is not None:
        return _from_edit(update.edited_message, channel=channel, account=account)
    if update.callback_query is not None:
        return _from_callback(update.callback_query, channel=channel, account=account)
    if update.my_chat_member is not None:
        return _from_member(update.my_chat_member, update.update_id, channel=channel, account=account)
    return None


def _from_message(message: Message, *, channel: str, account: str) -> Inbound | None:
    user = message.from_user
    if message.chat.type != ChatType.PRIVATE or user is None or user.is_bot:
        return None
    chat_id = _chat_id(message.chat.id)
    if not any(getattr(message, name, None) for name in _CONTENT):
        event = next((name for name in _SERVICE if getattr(message, name, None)), "service_message")
        return Inbound(
            channel=channel, account=account, external_id=chat_id, kind=Kind.NOTIFICATION,
            message_id=f"{chat_id}:{check.number('message_id', message.message_id)}",
            received_at=message.date or utcnow(), notice=Notice(event=event), raw=message,
        )
    kind, text, payload = _classify(message)
    return Inbound(
        channel=channel, account=account, external_id=chat_id, kind=kind,
        text=check.text("text" if message.text is not None else "caption", text, max_length=MAX_TEXT),
        payload=payload, message_id=f"{chat_id}:{check.number('message_id', message.message_id)}",
        received_at=message.date or utcnow(), language_hint=_language(user),
        display_name=_display_name(user), raw=message,
    )


def _from_edit(message: Message, *, channel: str, account: str) -> Inbound | None:
    """A follower edited a message: recorded (when and which), not answered a second time."""
    if message.chat.type != ChatType.PRIVATE:
        return None
    chat_id = _chat_id(message.chat.id)
    edited = int(message.edit_date.timestamp()) if message.edit_date is not None else 0
    # A live location moving is the follower's last location, not a message.
    location = _position(message)
    return Inbound(
        channel=channel, account=account, external_id=chat_id, kind=Kind.NOTIFICATION,
        message_id=f"edit:{chat_id}:{check.number('message_id', message.message_id)}:{edited}",
        received_at=message.edit_date or utcnow(), notice=Notice(event="edited_message", location=location),
        raw=message,
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
    if (position := _position(message)) is not None:
        return Kind.LOCATION, "", f"{position[0]:.6f},{position[1]:.6f}"
    return Kind.UNKNOWN, caption, None  # stickers, documents, video, contacts...


def _position(message: Message) -> tuple[float, float] | None:
    """The (latitude, longitude) a message shares, checked; None when it shares none."""
    if message.location is None:
        return None
    return (check.coordinate("location.latitude", message.location.latitude, bound=90),
            check.coordinate("location.longitude", message.location.longitude, bound=180))


def _from_callback(query: CallbackQuery, *, channel: str, account: str) -> Inbound | None:
    message = query.message
    if message is not None and message.chat.type != ChatType.PRIVATE:
        return None
    if query.data is None:  # a game button: nothing for the router
        return None
    chat_id = _chat_id(message.chat.id if message is not None else query.from_user.id)
    return Inbound(
        channel=channel, account=account, external_id=chat_id, kind=Kind.CLICK,
        payload=check.text("callback_data", query.data, max_length=MAX_CALLBACK_DATA),
        message_id=f"cb:{check.identifier('callback_query.id', query.id, max_length=MAX_QUERY_ID)}",
        language_hint=_language(query.from_user), display_name=_display_name(query.from_user), raw=query,
    )


def _from_member(change: ChatMemberUpdated, update_id: int, *, channel: str, account: str) -> Inbound | None:
    old, new = change.old_chat_member.status, change.new_chat_member.status
    notice = None
    if change.chat.type != ChatType.PRIVATE:
        # The bot added to (or removed from) a group or channel by someone: the account's news.
        kind, notice = Kind.NOTIFICATION, Notice(event="my_chat_member", about_follower=False,
                                                 details={"chat_type": str(change.chat.type), "status": str(new)})
    elif new == ChatMemberStatus.BANNED:  # "kicked": the user blocked the bot
        kind = Kind.UNFOLLOW
    elif new == ChatMemberStatus.MEMBER and old in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        kind = Kind.FOLLOW  # unblocked ("Restart")
    else:
        kind, notice = Kind.NOTIFICATION, Notice(event="my_chat_member", details={"status": str(new)})
    return Inbound(
        channel=channel, account=account, external_id=_chat_id(change.chat.id), kind=kind,
        message_id=f"u:{check.number('update_id', update_id)}", received_at=change.date or utcnow(),
        language_hint=_language(change.from_user), display_name=_display_name(change.from_user), notice=notice,
        raw=change,
    )
