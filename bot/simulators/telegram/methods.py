"""Bot API methods. Each ``api_<lowercased method>(params)`` returns the ``result`` or raises ``APIError``.

``getUpdates`` and the webhook methods live in ``server.py``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .formatting import EntityParseError, parse_text, utf16_len
from .params import APIError, Upload, bad, p_bool, p_int, p_json, p_str, scope_key
from .state import SimChat

MAX_TEXT = 4096
MAX_CAPTION = 1024
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
SEND_METHODS = {"sendmessage", "sendphoto", "senddocument", "sendsticker", "sendvoice", "sendaudio",
                "sendvideo", "sendanimation", "sendlocation", "sendcontact", "sendpoll", "senddice",
                "sendmediagroup", "copymessage", "forwardmessage", "sendvenue", "sendvideonote"}
CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}


class BotAPIMethods:
    """Mixed into ``TelegramBotAPISimulator`` (which also mixes in ``SimState``)."""

    # -- helpers -----------------------------------------------------------------------------------------
    def _target_chat(self, p: dict[str, Any], *, for_send: bool = True) -> SimChat:
        raw = p.get("chat_id")
        if raw is None or raw == "":
            raise bad("chat_id is empty")
        chat = None
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self.chats.values() if c.user and c.user.username == raw[1:]), None)
        else:
            try:
                chat = self.chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            raise bad("chat not found")
        if for_send and chat.user is not None:
            if chat.user.blocked:
                raise APIError(403, "Forbidden: bot was blocked by the user")
            if not chat.user.started:
                raise APIError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    def _markup(self, p: dict[str, Any]) -> dict[str, Any] | None:
        markup = p_json(p, "reply_markup", "reply keyboard markup JSON object")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                        raise bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
                    data = button.get("callback_data")
                    if data is not None and not 1 <= len(str(data).encode()) <= 64:
                        raise bad("BUTTON_DATA_INVALID")
                    if not any(k in button for k in ("callback_data", "url", "web_app", "login_url", "switch_inline_query",
                                                     "switch_inline_query_current_chat", "callback_game", "pay",
                                                     "copy_text", "switch_inline_query_chosen_chat")):
                        raise bad("can't parse inline keyboard button: InlineKeyboardButton must have exactly one optional field")
        return markup

    def _formatted(self, p: dict[str, Any], field: str, limit: int, *, required: bool) -> tuple[str | None, list[Any]]:
        raw = p_str(p, field)
        if raw is None or raw == "":
            if required:
                raise bad("message text is empty")
            return None, []
        try:
            text, entities = parse_text(raw, p_str(p, "parse_mode"))
        except EntityParseError as exc:
            raise bad(str(exc)) from None
        explicit = p_json(p, "entities" if field == "text" else "caption_entities")
        if explicit:
            entities = explicit
        if required and not text.strip():
            raise bad("message text is empty")
        if utf16_len(text) > limit:
            raise bad("message is too long" if field == "text" else "message caption is too long")
        return text, entities

    def _reply_to(self, chat: SimChat, p: dict[str, Any]) -> dict[str, Any] | None:
        params = p_json(p, "reply_parameters")
        message_id = p_int(p, "reply_to_message_id")
        allow = p_bool(p, "allow_sending_without_reply")
        if isinstance(params, dict):
            message_id = p_int(params, "message_id")
            allow = allow or bool(params.get("allow_sending_without_reply"))
        if message_id is None:
            return None
        original = chat.messages.get(message_id)
        if original is None:
            if allow:
                return None
            raise bad("message to be replied not found")
        return {k: v for k, v in original.items() if k != "reply_to_message"}

    def _resolve_file(self, p: dict[str, Any], field: str, kind: str) -> tuple[dict[str, Any], Any]:
        """(record fields, the SimFile or None); accepts an upload, attach://, a known file_id or a URL."""
        value = p.get(field)
        if isinstance(value, str) and value.startswith("attach://"):
            value = p.get(value[len("attach://"):])
        if isinstance(value, Upload):
            if not value.data:
                raise bad("file must be non-empty")
            if len(value.data) > self.max_file_bytes:
                raise bad(f"file is too big: at most {self.max_file_bytes} bytes")
            ext = (value.filename.rsplit(".", 1)[-1] if "." in value.filename else "bin")[:8]
            sim_file = self.add_file(value.data, kind=kind, mime_type=value.content_type, extension=ext)
            return {field: {"upload": value.filename, "size": len(value.data), "file_id": sim_file.file_id}}, sim_file
        if not isinstance(value, str) or not value:
            raise bad(f"there is no {field} in the request")
        if value in self.files:
            return {field: value}, self.files[value]
        if re.match(r"https?://", value):
            return {field: value}, None
        raise bad("wrong file identifier/HTTP URL specified")

    def _send(self, chat: SimChat, method: str, content: dict[str, Any], p: dict[str, Any],
              record: dict[str, Any]) -> dict[str, Any]:
        markup = self._markup(p)
        reply_to = self._reply_to(chat, p)
        message = {"message_id": chat.new_message_id(), "from": self.bot_user, "chat": chat.as_chat(),
                   "date": self._now(), **content}
        if reply_to:
            message["reply_to_message"] = reply_to
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        elif markup and "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup and markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        chat.messages[message["message_id"]] = message
        entry = {"message_id": message["message_id"], "method": method, "text": content.get("text"),
                 "entities": content.get("entities", []), "parse_mode": p_str(p, "parse_mode"),
                 "reply_markup": markup, "photo": None, "caption": content.get("caption"), "document": None,
                 "link_preview_options": p_json(p, "link_preview_options"),
                 "reply_to_message_id": reply_to["message_id"] if reply_to else None,
                 "at": time.monotonic(), "date": message["date"], "edited": False, **record}
        chat.sent.append(entry)
        chat.last_action = None
        self._event(chat, "out", method[4:].lower(), message_id=message["message_id"], text=entry["text"],
                    entities=entry["entities"], caption=entry["caption"], reply_markup=markup,
                    photo=entry["photo"], document=entry["document"], file_id=record.get("photo_file_id"))
        self._touch()
        return message

    # -- bot identity and lifecycle -----------------------------------------------------------------------
    async def api_getme(self, p: dict[str, Any]) -> Any:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False}

    async def api_logout(self, p: dict[str, Any]) -> Any:
        return True

    async def api_close(self, p: dict[str, Any]) -> Any:
        return True

    async def api_getchat(self, p: dict[str, Any]) -> Any:
        chat = self._target_chat(p, for_send=False)
        return {**chat.as_chat(), "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": {
            "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False, "premium_subscription": False}}

    # -- sending -------------------------------------------------------------------------------------------
    async def api_sendmessage(self, p: dict[str, Any]) -> Any:
        chat = self._target_chat(p)
        text, entities = self._formatted(p, "text", MAX_TEXT, required=True)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        preview = p_json(p, "link_preview_options")
        if isinstance(preview, dict) and preview:
            content["link_preview_options"] = preview
        return self._send(chat, "sendMessage", content, p, {})

    async def api_sendphoto(self, p: dict[str, Any]) -> Any:
        chat = self._target_chat(p)
        caption, entities = self._formatted(p, "caption", MAX_CAPTION, required=False)
        record, sim_file = self._resolve_file(p, "photo", "photo")
        content: dict[str, Any] = {"photo": self.photo_sizes(sim_file, 320, 320) if sim_file else self.photo_sizes(None)}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        if sim_file is not None:
            record["photo_file_id"] = sim_file.file_id
        return self._send(chat, "sendPhoto", content, p, record)

    async def api_senddocument(self, p: dict[str, Any]) -> Any:
        chat = self._target_chat(p)
        caption, entities = self._formatted(p, "caption", MAX_CAPTION, required=False)
        record, sim_file = self._resolve_file(p, "document", "document")
        if sim_file is None:
            sim_file = self.add_file(b"", kind="document", mime_type="application/octet-stream", extension="bin")
        name = record["document"]["upload"] if isinstance(record["document"], dict) else sim_file.file_path.rsplit("/", 1)[-1]
        content: dict[str, Any] = {"document": {"file_id": sim_file.file_id, "file_unique_id": sim_file.file_unique_id,
                                                "file_name": name, "mime_type": sim_file.mime_type,
                                                "file_size": len(sim_file.data)}}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        return self._send(chat, "sendDocument", content, p, record)

    async def api_sendchataction(self, p: dict[str, Any]) -> Any:
        chat = self._target_chat(p)
        action = p_str(p, "action")
        if action not in CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        chat.last_action = (action, time.monotonic())
        self._touch()
        return True

    # -- editing -------------------------------------------------------------------------------------------
    def _editable(self, p: dict[str, Any]) -> tuple[SimChat, dict[str, Any], dict[str, Any]]:
        if p.get("inline_message_id"):
            raise bad("inline messages are not simulated")
        chat = self._target_chat(p, for_send=False)
        if chat.user is not None and chat.user.blocked:
            raise APIError(403, "Forbidden: bot was blocked by the user")
        message_id = p_int(p, "message_id")
        message = chat.messages.get(message_id) if message_id is not None else None
        if message is None:
            raise bad("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise bad("message can't be edited")
        entry = next(e for e in chat.sent if e["message_id"] == message_id)
        return chat, message, entry

    def _apply_edit(self, chat: SimChat, message: dict[str, Any], entry: dict[str, Any], changes: dict[str, Any],
                    markup: dict[str, Any] | None) -> dict[str, Any]:
        new = {**message, **changes}
        if not new.get("entities"):
            new.pop("entities", None)
        if markup and "inline_keyboard" in markup:
            new["reply_markup"] = markup
        else:
            new.pop("reply_markup", None)
        if new == message:
            raise bad("message is not modified: specified new message content and reply markup are exactly the "
                      "same as a current content and reply markup of the message")
        new["edit_date"] = self._now()
        chat.messages[message["message_id"]] = new
        self._mark("chat", chat.id)
        entry.update({k: v for k, v in changes.items() if k in ("text", "entities", "caption")})
        entry.update(reply_markup=new.get("reply_markup"), edited=True)
        for event in chat.timeline:
            if event.get("dir") == "out" and event.get("message_id") == message["message_id"]:
                event.update(text=new.get("text"), entities=new.get("entities", []), caption=new.get("caption"),
                             reply_markup=new.get("reply_markup"), edited=True)
        self._touch()
        return new

    async def api_editmessagetext(self, p: dict[str, Any]) -> Any:
        chat, message, entry = self._editable(p)
        if "text" not in message:
            raise bad("there is no text in the message to edit")
        text, entities = self._formatted(p, "text", MAX_TEXT, required=True)
        return self._apply_edit(chat, message, entry, {"text": text, "entities": entities}, self._markup(p))

    async def api_editmessagecaption(self, p: dict[str, Any]) -> Any:
        chat, message, entry = self._editable(p)
        caption, _ = self._formatted(p, "caption", MAX_CAPTION, required=False)
        return self._apply_edit(chat, message, entry, {"caption": caption}, self._markup(p))

    async def api_editmessagereplymarkup(self, p: dict[str, Any]) -> Any:
        chat, message, entry = self._editable(p)
        return self._apply_edit(chat, message, entry, {}, self._markup(p))

    async def api_deletemessage(self, p: dict[str, Any]) -> Any:
        chat = self._target_chat(p, for_send=False)
        message_id = p_int(p, "message_id")
        if message_id not in chat.messages:
            raise bad("message to delete not found")
        del chat.messages[message_id]
        self._mark("chat", chat.id)
        for entry in chat.sent:
            if entry["message_id"] == message_id:
                entry["deleted"] = True
        chat.timeline[:] = [e for e in chat.timeline if e.get("message_id") != message_id or e["kind"] == "press"]
        self._touch()
        return True

    # -- callbacks and commands ----------------------------------------------------------------------------
    async def api_answercallbackquery(self, p: dict[str, Any]) -> Any:
        query_id = p_str(p, "callback_query_id")
        query = self.callback_queries.get(query_id or "")
        if query is None or query["answered"]:
            raise bad("query is too old and response timeout expired or query ID is invalid")
        text = p_str(p, "text")
        if text and len(text) > 200:
            raise bad("MESSAGE_TOO_LONG")
        query.update(answered=True, answer={"text": text, "show_alert": p_bool(p, "show_alert"), "url": p_str(p, "url"),
                                            "cache_time": p_int(p, "cache_time")})
        self.answered_callbacks.append(query_id)
        if text:
            self._event(self.chat(query["user_id"]), "out", "toast", text=text, show_alert=p_bool(p, "show_alert"))
        self._touch()
        return True

    def _commands_key(self, p: dict[str, Any]) -> tuple[str, str]:
        scope = p_json(p, "scope", "BotCommandScope")
        if scope is not None and (not isinstance(scope, dict) or "type" not in scope):
            raise bad("can't parse BotCommandScope")
        language = p_str(p, "language_code", "") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad("LANG_CODE_INVALID")
        return scope_key(scope), language

    async def api_setmycommands(self, p: dict[str, Any]) -> Any:
        commands = p_json(p, "commands", "BotCommand array")
        if commands is None:
            commands = []
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad("can't parse BotCommand array")
        for command in commands:
            if not isinstance(command, dict) or "command" not in command or "description" not in command:
                raise bad("can't parse BotCommand: Can't find field \"description\"")
            if not BOT_COMMAND.fullmatch(str(command["command"])):
                raise bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command["description"])) <= 256:
                raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(p)
        self.commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        if not commands:
            self.commands.pop(key, None)
        self._touch()
        return True

    async def api_getmycommands(self, p: dict[str, Any]) -> Any:
        return list(self.commands.get(self._commands_key(p), []))

    async def api_deletemycommands(self, p: dict[str, Any]) -> Any:
        self.commands.pop(self._commands_key(p), None)
        self._touch()
        return True

    async def api_setchatmenubutton(self, p: dict[str, Any]) -> Any:
        chat_id = p_int(p, "chat_id")
        if chat_id is not None and chat_id not in self.chats:
            raise bad("chat not found")
        button = p_json(p, "menu_button", "MenuButton")
        if button is None:
            button = {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in ("commands", "web_app", "default"):
            raise bad("can't parse MenuButton: type must be commands, web_app or default")
        if button["type"] == "web_app":
            text, web_app = button.get("text"), button.get("web_app")
            url = web_app.get("url") if isinstance(web_app, dict) else None
            if not isinstance(text, str) or not 1 <= len(text) <= 64:
                raise bad("BUTTON_TEXT_INVALID")
            if not isinstance(url, str) or not url.startswith("https://"):
                raise bad("BUTTON_URL_INVALID: a web app URL must be https")
            button = {"type": "web_app", "text": text, "web_app": {"url": url}}
        else:
            button = {"type": button["type"]}
        self.menu_buttons[chat_id] = button
        self._touch()
        return True

    async def api_getchatmenubutton(self, p: dict[str, Any]) -> Any:
        chat_id = p_int(p, "chat_id")
        return self.menu_button_for(chat_id) if chat_id is not None else dict(
            self.menu_buttons.get(None) or {"type": "commands"})

    # -- files ---------------------------------------------------------------------------------------------
    async def api_getfile(self, p: dict[str, Any]) -> Any:
        sim_file = self.files.get(p_str(p, "file_id") or "")
        if sim_file is None:
            raise bad("invalid file_id")
        return {"file_id": sim_file.file_id, "file_unique_id": sim_file.file_unique_id,
                "file_size": len(sim_file.data), "file_path": sim_file.file_path}
