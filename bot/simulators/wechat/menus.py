"""The account's custom menus as the platform keeps them: the default one and the personalized ones.

``menu/create`` sets the default menu, ``menu/addconditional`` adds a personalized one with a
``matchrule`` (a follower's WeChat language, a tag); a follower sees the newest personalized menu
whose rule matches them, else the default. The checks and error codes are the platform's; where
they come from: docs/menus.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MenuError", "check_buttons", "check_matchrule", "matches"]

TYPES = ("click", "view", "scancode_push", "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album", "pic_weixin",
         "location_select", "miniprogram", "media_id", "article_id", "article_view_limited")
MENU_LANGUAGES = ("zh_CN", "zh_TW", "zh_HK", "en", "id", "ms", "es", "ko", "it", "ja", "pl", "pt", "ru", "th", "vi",
                  "ar", "hi", "he", "tr", "de", "fr")
TOP_NAME_BYTES, SUB_NAME_BYTES, KEY_BYTES, URL_BYTES = 16, 60, 128, 1024


class MenuError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def _size(value: Any) -> int:
    return len(value.encode("utf-8")) if isinstance(value, str) else 0


def _check_action(item: dict[str, Any], *, sub: bool) -> dict[str, Any]:
    # Sub-buttons have their own codes: 40024..40027 instead of 40017..40020.
    type_code, key_code, url_code = (40024, 40026, 40027) if sub else (40017, 40019, 40020)
    kind = item.get("type")
    if kind not in TYPES:
        raise MenuError(type_code, f"invalid {'sub ' if sub else ''}button type {kind!r}")
    out = {"type": kind, "name": item["name"]}
    if kind == "view":
        url = item.get("url")
        if not 1 <= _size(url) <= URL_BYTES:
            raise MenuError(url_code, f"invalid {'sub ' if sub else ''}button url size")
        if not url.startswith(("http://", "https://")):
            raise MenuError(40054 if sub else 40055, "invalid button url domain")
        out["url"] = url
    else:
        key = item.get("key")
        if not 1 <= _size(key) <= KEY_BYTES:
            raise MenuError(key_code, f"invalid {'sub ' if sub else ''}button key size")
        out["key"] = key
    return out


def check_buttons(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The menu's buttons, checked as the platform does: 1..3 top-level, 1..5 under each, names in bytes."""
    buttons = body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise MenuError(40016, "invalid button size: 1..3 top-level buttons")
    out = []
    for item in buttons:
        if not isinstance(item, dict) or not 1 <= _size(item.get("name")) <= TOP_NAME_BYTES:
            raise MenuError(40018, f"invalid button name size: 1..{TOP_NAME_BYTES} bytes")
        subs = item.get("sub_button")
        if isinstance(subs, list) and subs:
            if len(subs) > 5:
                raise MenuError(40023, "invalid sub button size: 1..5 under a button")
            checked = []
            for sub in subs:
                if not isinstance(sub, dict) or not 1 <= _size(sub.get("name")) <= SUB_NAME_BYTES:
                    raise MenuError(40025, f"invalid sub button name size: 1..{SUB_NAME_BYTES} bytes")
                checked.append(_check_action(sub, sub=True))
            out.append({"name": item["name"], "sub_button": checked})
        else:
            out.append(_check_action(item, sub=False))
    return out


def check_matchrule(body: dict[str, Any], *, language_rules: bool) -> dict[str, Any]:
    rule = body.get("matchrule")
    if not isinstance(rule, dict) or not any(rule.get(k) not in (None, "") for k in ("tag_id", "language")):
        raise MenuError(65304, "match rule empty: give tag_id or language")
    unknown = sorted(set(rule) - {"tag_id", "language", "sex", "country", "province", "city", "client_platform_type"})
    if unknown:
        raise MenuError(47001, f"data format error: unknown matchrule field(s) {unknown}")
    language = rule.get("language")
    if language not in (None, ""):
        if not language_rules:
            raise MenuError(65320, "matchrule with private information (language) is not supported")
        if language not in MENU_LANGUAGES:
            # WeChat documents no code of its own for this (65318 is "must use utf-8 charset"): the
            # simulator answers the general "invalid parameter".
            raise MenuError(40035, f"invalid args: language {language!r}")
    tag = rule.get("tag_id")
    if tag not in (None, "") and not (isinstance(tag, str) and tag.isdigit()):
        raise MenuError(65301, "invalid tag_id: a tag id as a string")
    return {k: v for k, v in rule.items() if v not in (None, "")}


def matches(rule: dict[str, Any], *, language: str | None, tags: list[int]) -> bool:
    """Whether a follower with this WeChat ``language`` and ``tags`` sees a personalized menu with ``rule``."""
    if "language" in rule and rule["language"] != language:
        return False
    return not ("tag_id" in rule and int(rule["tag_id"]) not in tags[-1:])  # the last tag set is the one matched
