"""Updates to Inbound: commands, deep links, clicks, blocks, media, groups."""

from __future__ import annotations

from telegram import Update

from bot import Kind
from bot.channels.telegram.updates import update_to_inbound

USER = {"id": 42, "is_bot": False, "first_name": "Li", "last_name": "Lei", "language_code": "zh-hans"}
PRIVATE = {"id": 42, "type": "private", "first_name": "Li"}


def message(text: str | None = None, *, chat: dict | None = None, command: bool | None = None, **more) -> Update:
    msg = {"message_id": 7, "date": 1700000000, "chat": chat or PRIVATE, "from": USER, **more}
    if text is not None:
        msg["text"] = text
        if command if command is not None else text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return Update.de_json({"update_id": 1, "message": msg}, None)


def inbound(update: Update):
    return update_to_inbound(update, channel="telegram", account="123")


def test_text_and_its_metadata():
    msg = inbound(message("hello"))
    assert (msg.kind, msg.text, msg.external_id, msg.message_id) == (Kind.TEXT, "hello", "42", "42:7")
    assert msg.language_hint == "zh-hans" and msg.display_name == "Li Lei"
    assert msg.received_at.tzinfo is not None


def test_start_with_a_payload_is_a_scan_and_a_bare_start_a_command():
    assert (inbound(message("/start campaign-x")).kind, inbound(message("/start campaign-x")).payload) == (
        Kind.SCAN, "campaign-x")
    assert inbound(message("/start@brand_bot spring")).payload == "spring"
    assert inbound(message("/start")).kind is Kind.COMMAND
    invalid = inbound(message("/start not valid!"))
    assert invalid.kind is Kind.COMMAND and invalid.payload is None
    assert inbound(message("/help")).kind is Kind.COMMAND
    assert inbound(message("/notacommand", command=False)).kind is Kind.TEXT


def test_callback_query_is_a_click():
    update = Update.de_json({"update_id": 5, "callback_query": {
        "id": "99", "from": USER, "chat_instance": "1", "data": "help",
        "message": {"message_id": 3, "date": 1700000000, "chat": PRIVATE, "text": "Pick"}}}, None)
    msg = inbound(update)
    assert (msg.kind, msg.payload, msg.message_id, msg.external_id) == (Kind.CLICK, "help", "cb:99", "42")


def test_block_and_unblock_are_unfollow_and_follow():
    def member(old: str, new: str) -> Update:
        bot = {"id": 123, "is_bot": True, "first_name": "Bot"}
        def status(value: str) -> dict:
            return {"user": bot, "status": value, **({"until_date": 0} if value == "kicked" else {})}
        return Update.de_json({"update_id": 9, "my_chat_member": {
            "chat": PRIVATE, "from": USER, "date": 1700000000,
            "old_chat_member": status(old), "new_chat_member": status(new)}}, None)
    assert inbound(member("member", "kicked")).kind is Kind.UNFOLLOW
    assert inbound(member("kicked", "member")).kind is Kind.FOLLOW
    assert inbound(member("kicked", "member")).message_id == "u:9"


def test_media_kinds_and_groups():
    photo = [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]
    assert inbound(message(photo=photo, caption="look")).kind is Kind.IMAGE
    assert inbound(message(voice={"file_id": "v", "file_unique_id": "u", "duration": 1})).kind is Kind.VOICE
    sticker = {"file_id": "s", "file_unique_id": "u", "type": "regular", "width": 1, "height": 1,
               "is_animated": False, "is_video": False}
    assert inbound(message(sticker=sticker)).kind is Kind.UNKNOWN
    assert inbound(message("hello all", chat={"id": -5, "type": "group", "title": "G"})) is None
