"""engagebot: talk with a brand's followers on several channels at once, in Mandarin and English.

The public API for handlers and extensions; everything else is internal.
"""

from bot.core.capabilities import Capabilities, ReplyWindow
from bot.core.context import Context
from bot.core.dispatcher import Dispatcher, Middleware, Next
from bot.core.inbound import Inbound, Kind
from bot.core.reply import Article, ArticlesReply, Button, ButtonsReply, ImageReply, QrReply, Reply, TextReply
from bot.core.router import Router
from bot.i18n import N_, _, chinese_locale, fold, ngettext, normalize_locale

__all__ = [
    "Article",
    "ArticlesReply",
    "Button",
    "ButtonsReply",
    "Capabilities",
    "Context",
    "Dispatcher",
    "ImageReply",
    "Inbound",
    "Kind",
    "Middleware",
    "N_",
    "Next",
    "QrReply",
    "Reply",
    "ReplyWindow",
    "Router",
    "TextReply",
    "_",
    "chinese_locale",
    "fold",
    "ngettext",
    "normalize_locale",
]
