"""Replies to JSON and back, so a stored reply can be resent exactly (platform retries, the outbox)."""

from __future__ import annotations

from typing import Any, assert_never

from .reply import (
    Article,
    ArticlesReply,
    Button,
    ButtonsReply,
    ImageReply,
    LocationRequestReply,
    QrReply,
    Reply,
    TextReply,
)


def reply_to_dict(reply: Reply) -> dict[str, Any]:
    match reply:
        case TextReply(text=text):
            return {"type": "text", "text": text}
        case ArticlesReply(articles=articles):
            return {"type": "articles", "articles": [
                {"title": a.title, "description": a.description, "url": a.url, "picture_url": a.picture_url}
                for a in articles]}
        case ImageReply(url=url, caption=caption):
            return {"type": "image", "url": url, "caption": caption}
        case ButtonsReply(text=text, buttons=buttons):
            return {"type": "buttons", "text": text,
                    "buttons": [{"label": b.label, "payload": b.payload} for b in buttons]}
        case QrReply(scene=scene, caption=caption, url=url):
            return {"type": "qr", "scene": scene, "caption": caption, "url": url}
        case LocationRequestReply(text=text, button=button, fallback=fallback):
            return {"type": "location_request", "text": text, "button": button, "fallback": fallback}
        case _:
            assert_never(reply)


def reply_from_dict(data: dict[str, Any]) -> Reply:
    kind = data.get("type")
    if kind == "text":
        return TextReply(data["text"])
    if kind == "articles":
        return ArticlesReply(tuple(Article(**a) for a in data["articles"]))
    if kind == "image":
        return ImageReply(data["url"], data.get("caption", ""))
    if kind == "buttons":
        return ButtonsReply(data["text"], tuple(Button(**b) for b in data["buttons"]))
    if kind == "qr":
        return QrReply(data["scene"], data.get("caption", ""), data.get("url", ""))
    if kind == "location_request":
        return LocationRequestReply(data["text"], data["button"], data["fallback"])
    raise ValueError(f"unknown reply type {kind!r}")


def reply_text(reply: Reply) -> str:
    """A plain-text summary of a reply, stored beside it for search and the console."""
    match reply:
        case TextReply(text=text) | ButtonsReply(text=text) | LocationRequestReply(text=text):
            return text
        case ArticlesReply(articles=articles):
            return "\n".join(a.title for a in articles)
        case ImageReply(caption=caption) | QrReply(caption=caption):
            return caption
        case _:
            assert_never(reply)


def reply_kind(reply: Reply) -> str:
    return str(reply_to_dict(reply)["type"])
