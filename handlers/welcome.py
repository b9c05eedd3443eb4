"""Welcome a new follower (or a scan) in their language and say what they can do."""

from bot import Button, ButtonsReply, Context, Inbound, Kind, Reply, Router, _, fold, welcome_replies

router = Router("welcome", ctx_only=True)  # changes nothing but through ctx: see Router.on


@router.on(Kind.FOLLOW)
async def greet(msg: Inbound, ctx: Context) -> list[Reply]:
    return welcome_replies()


@router.on(Kind.SCAN, priority=-10)
async def greet_scan(msg: Inbound, ctx: Context) -> list[Reply]:
    if not ctx.was_following:
        return welcome_replies()
    return [ButtonsReply(_("Welcome back! Here is what I can do:"),
                         (Button(_("Help"), "help"), Button("中文 / English", "lang")))]


@router.on(Kind.COMMAND, command="start", priority=-10)
async def start(msg: Inbound, ctx: Context) -> list[Reply]:
    return welcome_replies()


# Compared folded (case, and Traditional as Simplified: 哈囉 is 哈啰).
GREETINGS = {"hi", "hello", "hey", "hi there", "hello there", "good morning", "good evening",
             "你好", "您好", "嗨", "哈喽", "哈啰", "在吗", "早上好", "晚上好", "早晨", "你好呀", "您好呀"}


@router.on(Kind.TEXT, priority=45, when=lambda msg, ctx: fold(msg.text.strip().strip("!！。.~～?？")) in GREETINGS,
           answers="welcome")
async def greet_back(msg: Inbound, ctx: Context) -> list[Reply]:
    return [ButtonsReply(_("Hello! How can I help you today?"),
                         (Button(_("Help"), "help"), Button("中文 / English", "lang")))]
