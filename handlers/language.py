"""Switch the follower's language: "English", "中文", "繁體", "/lang zh-hant", or the language buttons.

The choice is stored on the follower and beats every other clue (platform hint, script) from then on.
"""

from bot import (
    Button,
    ButtonsReply,
    Context,
    Inbound,
    Kind,
    Reply,
    Router,
    TextReply,
    _,
    chinese_locale,
    fold,
    normalize_locale,
)

router = Router("language", ctx_only=True)  # changes nothing but through ctx: see Router.on

CHINESE = "zh"  # Chinese in the script this follower reads: see chinese_for
# Whole-message words only: "I like Chinese food" must not switch anything. Compared folded (case,
# and Traditional characters as Simplified: 簡體 is 简体), so each word is written once, in Simplified.
WORDS = {
    "english": "en", "in english": "en", "英文": "en", "英语": "en",
    "中文": CHINESE, "chinese": CHINESE, "汉语": CHINESE, "普通话": CHINESE, "说中文": CHINESE,
    "mandarin": CHINESE, "华语": CHINESE, "国语": CHINESE,
    "简体": "zh_Hans", "简体中文": "zh_Hans", "简中": "zh_Hans", "中文简体": "zh_Hans", "simplified chinese": "zh_Hans",
    "繁体": "zh_Hant", "繁体中文": "zh_Hant", "繁中": "zh_Hant", "中文繁体": "zh_Hant", "正体中文": "zh_Hant",
    "traditional chinese": "zh_Hant", "广东话": "zh_Hant", "粤语": "zh_Hant", "cantonese": "zh_Hant",
}
# /lang arguments that are not language tags (tags such as en-GB, zh-hant, zh-TW are read as tags).
ARGS = {"zh": CHINESE, "cn": "zh_Hans", "hk": "zh_Hant", "tw": "zh_Hant", "mo": "zh_Hant"}


def chinese_for(msg: Inbound, ctx: Context) -> str:
    """Which Chinese "中文" means: the script it is written in (漢語), else the Chinese the platform
    says the follower reads (zh-HK), else the one they read now, else the account's."""
    written = msg.command_args if msg.kind is Kind.COMMAND else msg.text
    return chinese_locale(written, ctx.follower.locale_hint, ctx.locale,
                          ctx.default_locale, available=ctx.catalogs.locales)


def switched(msg: Inbound, ctx: Context, locale: str) -> list[Reply]:
    if locale == CHINESE:
        locale = chinese_for(msg, ctx)
    ctx.set_locale(locale)
    return [TextReply(_("OK, I will speak English from now on.") if locale == "en"
                      else _("OK, I will speak Chinese from now on."))]


def choose() -> list[Reply]:
    """The language menu; each language named in itself."""
    return [ButtonsReply(_("Which language do you prefer?"), (
        Button("English", "lang:en"), Button("简体中文", "lang:zh_Hans"), Button("繁體中文", "lang:zh_Hant")))]


@router.on(Kind.TEXT, priority=100, when=lambda msg, ctx: fold(msg.text.strip()) in WORDS, answers="language")
async def language_word(msg: Inbound, ctx: Context) -> list[Reply]:
    return switched(msg, ctx, WORDS[fold(msg.text.strip())])


@router.on(Kind.COMMAND, command=("lang", "language"), priority=100, answers="language")
async def language_command(msg: Inbound, ctx: Context) -> list[Reply]:
    arg = fold(msg.command_args)
    if not arg:
        return choose()
    locale = ARGS.get(arg) or WORDS.get(arg) or normalize_locale(arg, ctx.catalogs.locales)
    if locale is None:
        return [TextReply(_("Sorry, I only speak English and Chinese (Simplified or Traditional). "
                            "Send /lang en, /lang zh-hans or /lang zh-hant.")), *choose()]
    return switched(msg, ctx, locale)


@router.on(Kind.CLICK, priority=100, when=lambda msg, ctx: (msg.payload or "").startswith("lang"))
async def language_button(msg: Inbound, ctx: Context) -> list[Reply]:
    _prefix, _sep, locale = (msg.payload or "").partition(":")
    if locale in ctx.catalogs.locales:
        return switched(msg, ctx, locale)
    return choose()
