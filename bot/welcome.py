"""The welcome a new follower gets: shared by the welcome handler and by arrivals that grant an offer."""

from __future__ import annotations

from bot.core.reply import Button, ButtonsReply, Reply
from bot.i18n import _


def welcome_replies() -> list[Reply]:
    return [ButtonsReply(
        _("Welcome! Thanks for following us. Ask me anything, or pick one:"),
        (Button(_("Help"), "help"), Button("中文 / English", "lang")),
    )]
