"""A follower who asks for a person is queued for our agents; the bot is silent until one answers.

What counts as asking: the whole message (spaces and end punctuation aside) is one of ``ASK_WORDS``,
in any of the three languages (compared folded, so 轉人工 is 转人工 and HUMAN is human), or the
command /human (/agent), or a menu key ``human``. A word inside a longer sentence does not count:
"客服电话是多少" asks for a phone number (a prompt rule answers it), "I am not a human" asks nothing.
Matched above the prompt rules and offers, below the language switch.
"""

from bot import Context, Inbound, Kind, Reply, Router, TextReply, _, fold

router = Router("handoff", ctx_only=True)  # changes nothing but through ctx: see Router.on

ASK_WORDS = {
    "en": ["human", "agent", "a human", "person", "a person", "real person", "a real person", "human agent",
           "live agent", "customer service", "talk to a human", "speak to a human", "talk to a person",
           "speak to a person", "talk to an agent", "speak to an agent", "human please", "agent please"],
    "zh_Hans": ["人工", "客服", "人工客服", "转人工", "转人工客服", "我要人工", "我要人工客服", "找人工", "找客服",
                "联系客服", "真人", "真人客服", "在线客服", "人工服务"],
    "zh_Hant": ["人工", "客服", "人工客服", "轉人工", "轉接人工", "轉真人", "我要人工", "找客服", "聯絡客服",
                "聯繫客服", "真人", "真人客服", "專人", "專人服務", "線上客服", "人工服務"],
}
WORDS = frozenset(fold(word) for words in ASK_WORDS.values() for word in words)
MENU_KEY = "human"
_END_PUNCTUATION = "!！。.~～?？,，"


def asks_for_person(text: str) -> bool:
    """Whether ``text`` as a whole asks for a person (see the module's docstring)."""
    return fold(" ".join(text.split()).strip(_END_PUNCTUATION).strip()) in WORDS


@router.on(Kind.TEXT, priority=90, when=lambda msg, ctx: asks_for_person(msg.text), answers="handoff")
@router.on(Kind.COMMAND, command=("human", "agent"), priority=90, answers="handoff")
@router.on(Kind.CLICK, priority=90, when=lambda msg, ctx: msg.payload == MENU_KEY)
async def ask_for_person(msg: Inbound, ctx: Context) -> list[Reply]:
    ctx.follower.queue_for_agent(ctx.now, told=True)
    return [TextReply(_("OK, I have asked a person from our team to answer you. "
                        "Please wait here: they will reply soon."))]
