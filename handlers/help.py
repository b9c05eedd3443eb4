"""Tell the follower what the bot can do."""

from bot import Context, Inbound, Kind, Reply, Router, TextReply, _, fold

router = Router("help", ctx_only=True)  # changes nothing but through ctx: see Router.on

HELP_WORDS = {"help", "?", "？", "帮助", "菜单", "menu", "说明"}  # compared folded: 幫助 is 帮助


def help_text() -> str:
    return _(
        "Here is what I can do:\n"
        "- Ask a question, such as opening hours.\n"
        "- Say \"English\", \"中文\" or \"繁體\" to switch language.\n"
        "- Send /help to see this again."
    )


@router.on(Kind.COMMAND, command="help", priority=50, answers="help")
async def help_command(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(help_text())]


@router.on(Kind.TEXT, priority=50, when=lambda msg, ctx: fold(msg.text.strip()) in HELP_WORDS, answers="help")
async def help_word(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(help_text())]


@router.on(Kind.CLICK, priority=50, when=lambda msg, ctx: msg.payload == "help")
async def help_button(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(help_text())]
