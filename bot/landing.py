"""The landing page at ``/``: where to go from here, in English and in Chinese (both catalogs).

It links the follower pages of the simulators served by this app, ``/healthz``, and whatever a
plugin adds to ``LANDING_LINKS`` (the operator console registers itself there when it is served).
Both languages are on the page; the reader's ``Accept-Language`` decides which comes first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from html import escape

from aiohttp import web

from bot.i18n import N_, SUPPORTED_LOCALES, Catalogs, normalize_locale
from bot.settings import Settings
from bot.simulation import PAGES, chat_command

# (label msgid, path): links for operators that plugins add (e.g. the operator console).
LANDING_LINKS = web.AppKey("landing_links", list)

TITLE = N_("engagebot is running")
INTRO = N_("A brand talks with its followers on WeChat, Telegram and Weibo, in Chinese and English.")
FOLLOWERS = N_("Be a follower")
FOLLOWER_PAGES = {
    "wechat": N_("WeChat: a follower's phone (simulator)"),
    "telegram": N_("Telegram: a chat with the bot (simulator)"),
    "weibo": N_("Weibo: a fan's page, direct messages and public comments (simulator)"),
}
NO_SIMULATOR = N_("No simulator is served here: followers reach the bot on the real platforms.")
IN_A_TERMINAL = N_("Or in a terminal:")
OPERATORS = N_("For operators")
HEALTH = N_("Health check")
# The label for the operator console's link (its plugin appends (OPERATOR_CONSOLE, path) to LANDING_LINKS).
OPERATOR_CONSOLE = N_("Operator console")

# The same font stack as the simulator pages: Mac, Windows, then the CJK and emoji fonts Linux has.
STYLE = """
body { margin: 0; padding: 24px; background: #f5f6f7; color: #222;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "PingFang SC", "Hiragino Sans GB",
             "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans SC", "Source Han Sans SC",
             "Source Han Sans CN", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", sans-serif,
             "Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji"; }
main { display: flex; flex-wrap: wrap; gap: 24px; }
section { background: #fff; border-radius: 10px; padding: 8px 24px 16px; flex: 1 1 320px; max-width: 520px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h1 { font-size: 22px; } h2 { font-size: 16px; margin-top: 20px; }
a { color: #1a6fb5; } code { background: #eef1f4; border-radius: 4px; padding: 1px 5px; }
ul { padding-left: 20px; } li { margin: 4px 0; }
"""


def _ordered_locales(accept_language: str) -> list[str]:
    """Both catalog locales, the reader's preferred first (``Accept-Language``, in its order)."""
    first = None
    for part in accept_language.split(",")[:10]:
        first = normalize_locale(part.split(";", 1)[0].strip())
        if first:
            break
    return sorted(SUPPORTED_LOCALES, key=lambda loc: loc != first)


def _section(request: web.Request, locale: str, catalogs: Catalogs, settings: Settings,
             mounted: Sequence[str]) -> str:
    t = lambda msgid: escape(catalogs.gettext(locale, msgid))  # noqa: E731
    lang = locale.replace("_", "-")
    parts = [f'<section lang="{lang}" id="locale-{locale}">', f"<h1>{t(TITLE)}</h1>", f"<p>{t(INTRO)}</p>",
             f"<h2>{t(FOLLOWERS)}</h2>"]
    if mounted:
        parts.append("<ul>" + "".join(
            f'<li><a href="{PAGES[p]}">{t(FOLLOWER_PAGES[p])}</a></li>' for p in mounted) + "</ul>")
        parts.append(f"<p>{t(IN_A_TERMINAL)}</p><ul>" + "".join(
            f"<li><code>{escape(chat_command(settings, p))}</code></li>" for p in mounted) + "</ul>")
    else:
        parts.append(f"<p>{t(NO_SIMULATOR)}</p>")
    links = [(HEALTH, "/healthz"), *request.app[LANDING_LINKS]]
    parts.append(f"<h2>{t(OPERATORS)}</h2><ul>" + "".join(
        f'<li><a href="{escape(path)}">{t(label)}</a></li>' for label, path in links) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def landing_page(catalogs: Catalogs, settings: Settings,
                 mounted: Sequence[str]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``GET /`` for an app serving the simulators ``mounted`` (platform names)."""

    async def page(request: web.Request) -> web.Response:
        return _landing_page(request, catalogs, settings, mounted)

    return page


def _landing_page(request: web.Request, catalogs: Catalogs, settings: Settings,
                  mounted: Sequence[str]) -> web.Response:
    """``GET /``: the landing page, both languages, the reader's first."""
    locales = _ordered_locales(request.headers.get("Accept-Language", ""))
    first = locales[0].replace("_", "-")
    body = "".join(_section(request, loc, catalogs, settings, mounted) for loc in locales)
    html = (f'<!doctype html><html lang="{first}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>engagebot</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>")
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"})
