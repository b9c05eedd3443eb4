"""Switch the follower's language: "English", "中文", "/lang en", "/lang zh", or the language button."""

from bot import Button, ButtonsReply, Context, Inbound, Kind, Reply, Router, TextReply, _

router = Router("language")

# Whole-message words only: "I like Chinese food" must not switch anything.
WORDS = {
    "english": "en", "in english": "en", "英文": "en", "英语": "en", "英語": "en",
    "中文": "zh_Hans", "chinese": "zh_Hans", "汉语": "zh_Hans", "漢語": "zh_Hans", "普通话": "zh_Hans",
    "简体中文": "zh_Hans", "說中文": "zh_Hans", "说中文": "zh_Hans", "mandarin": "zh_Hans",
}
ARGS = {"en": "en", "english": "en", "zh": "zh_Hans", "zh_hans": "zh_Hans", "zh-hans": "zh_Hans",
        "zh-cn": "zh_Hans", "cn": "zh_Hans", "中文": "zh_Hans", "chinese": "zh_Hans"}


def switched(ctx: Context, locale: str) -> list[Reply]:
    ctx.set_locale(locale)
    return [TextReply(_("OK, I will speak English from now on.") if locale == "en"
                      else _("OK, I will speak Chinese from now on."))]


def choose() -> list[Reply]:
    return [ButtonsReply(_("Which language do you prefer?"),
                         (Button("English", "lang:en"), Button("中文", "lang:zh_Hans")))]


@router.on(Kind.TEXT, priority=100, when=lambda msg, ctx: msg.text.strip().casefold() in WORDS)
async def language_word(msg: Inbound, ctx: Context) -> list[Reply]:
    return switched(ctx, WORDS[msg.text.strip().casefold()])


@router.on(Kind.COMMAND, command=("lang", "language"), priority=100)
async def language_command(msg: Inbound, ctx: Context) -> list[Reply]:
    arg = msg.command_args.casefold()
    if not arg:
        return choose()
    locale = ARGS.get(arg)
    if locale is None:
        return [TextReply(_("Sorry, I only speak English and Chinese. Send /lang en or /lang zh.")), *choose()]
    return switched(ctx, locale)


@router.on(Kind.CLICK, priority=100, when=lambda msg, ctx: (msg.payload or "").startswith("lang"))
async def language_button(msg: Inbound, ctx: Context) -> list[Reply]:
    _prefix, _sep, locale = (msg.payload or "").partition(":")
    if locale in ctx.catalogs.locales:
        return switched(ctx, locale)
    return choose()
