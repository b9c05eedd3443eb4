"""The router: priority, per-locale keywords, regex, commands, conversation state, fallback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from bot import Button, ButtonsReply, Context, Inbound, Kind, Reply, Router, TextReply, _
from bot.core.capabilities import Capabilities
from bot.testing import BotHarness

router = Router("test")


@router.on(keywords={"en": ["price"], "zh_Hans": ["价格"]})
async def price_low(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply("low priority price")]


@router.on(keywords={"en": ["price"]}, priority=5)
async def price_high(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(f"price in {ctx.locale}")]


@router.on(regex=r"^order\s+#?(\d{4,})$")
async def order_lookup(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply("order found")]


@router.on(command="survey")
async def start_survey(msg: Inbound, ctx: Context) -> list[Reply]:
    ctx.set_state("survey.name")
    return [TextReply("What is your name?")]


@router.on(Kind.TEXT, state="survey.name", priority=200)
async def survey_name(msg: Inbound, ctx: Context) -> list[Reply]:
    ctx.set_state("survey.city", name=msg.text)
    return [TextReply("Which city?")]


@router.on(Kind.TEXT, state="survey.city", priority=200)
async def survey_city(msg: Inbound, ctx: Context) -> list[Reply]:
    name = ctx.state_data["name"]
    ctx.clear_state()
    return [TextReply(f"Thanks {name} from {msg.text}")]


@router.on(Kind.TEXT, keywords={"en": ["pass"]}, priority=300)
async def passes_on(msg: Inbound, ctx: Context) -> None:
    return None  # not mine after all: the next handler gets it


@router.on(command="pick")
async def pick(msg: Inbound, ctx: Context) -> list[Reply]:
    return [ButtonsReply("Pick one", (Button("Red", "color:red"), Button("Blue", "color:blue")))]


@router.on(Kind.CLICK, when=lambda msg, ctx: (msg.payload or "").startswith("color:"))
async def picked(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(f"you picked {msg.payload}")]


@router.on(command="boom")
async def boom(msg: Inbound, ctx: Context) -> list[Reply]:
    raise RuntimeError("handler bug")


@router.fallback()
async def fallback(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(_("Sorry, I did not understand that. Send /help to see what I can do."))]


async def test_higher_priority_handler_wins(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        alice = bot.follower("alice", language="en")
        await alice.say("what is the PRICE?")
        assert alice.texts == ["price in en"]


async def test_keyword_of_another_locale_matches_and_answers_in_followers_locale(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        alice = bot.follower("alice", language="en")
        await alice.say("价格多少")
        assert alice.texts == ["low priority price"]


async def test_regex_and_commands_match(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        bob = bot.follower("bob", language="en")
        await bob.say("order #12345")
        assert bob.texts == ["order found"]
        await bob.say("order 12")
        assert bob.texts == ["Sorry, I did not understand that. Send /help to see what I can do."]
        await bob.say("/survey@brand_bot")
        assert bob.texts == ["What is your name?"]


async def test_handler_returning_none_passes_the_message_on(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        carl = bot.follower("carl", language="en")
        await carl.say("pass the price")
        assert carl.texts == ["price in en"]


async def test_conversation_state_across_messages(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        dee = bot.follower("dee", language="en")
        await dee.say("/survey")
        await dee.say("Dee")
        assert dee.texts == ["Which city?"]
        await dee.say("price")  # state handlers outrank keyword handlers while the survey runs
        assert dee.texts == ["Thanks Dee from price"]
        await dee.say("price")
        assert dee.texts == ["price in en"]


async def test_fallback_is_localized(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        zh = bot.follower("zh", language="zh-CN")
        await zh.say("???")
        assert zh.texts == ["抱歉，我没太明白您的意思。发送 /help 看看我能帮您做什么。"]


async def test_buttons_become_numbered_choices_and_a_number_presses_them(database_url: str) -> None:
    caps = Capabilities(buttons=False)
    async with BotHarness(routers=[router], database_url=database_url, capabilities=caps) as bot:
        eve = bot.follower("eve", language="en")
        await eve.say("/pick")
        assert eve.texts == ["Pick one\n\n1. Red\n2. Blue"]
        await eve.say("2")
        assert eve.texts == ["you picked color:blue"]
        await eve.say("2")  # the choices were used: "2" is plain text again
        assert eve.texts == ["Sorry, I did not understand that. Send /help to see what I can do."]


async def test_buttons_stay_buttons_where_the_channel_has_them(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        fay = bot.follower("fay", language="en")
        replies = await fay.say("/pick")
        assert replies == [ButtonsReply("Pick one", (Button("Red", "color:red"), Button("Blue", "color:blue")))]
        await fay.click("color:red")
        assert fay.texts == ["you picked color:red"]


async def test_a_failing_handler_gets_a_localized_apology_and_the_message_is_kept(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        gus = bot.follower("gus", language="zh-hans")
        await gus.say("/boom")
        assert gus.texts == ["抱歉，我们这边出了点问题，请稍后再试。"]
        from sqlalchemy import func, select

        from bot.storage.models import Message

        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1


async def test_same_platform_message_id_is_handled_once(database_url: str) -> None:
    async with BotHarness(routers=[router], database_url=database_url) as bot:
        first = await bot.channel.receive("hal", Kind.COMMAND, "/survey", message_id="m-1")
        again = await bot.channel.receive("hal", Kind.COMMAND, "/survey", message_id="m-1")
        assert first == again == [TextReply("What is your name?")]
        nxt = await bot.channel.receive("hal", Kind.TEXT, "Hal", message_id="m-2")
        assert nxt == [TextReply("Which city?")]  # the duplicate did not restart the survey


STATE_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from bot.testing import BotHarness
    from tests.core.test_router import router

    async def main():
        async with BotHarness(routers=[router], database_url={url!r}) as bot:
            ivy = bot.follower("ivy", language="en")
            await ivy.say(sys.argv[1])
            print(ivy.last_text)

    asyncio.run(main())
""")


def test_conversation_state_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "step.py"
    script.write_text(STATE_SCRIPT.format(root=root, url=database_url))

    def step(text: str) -> str:
        done = subprocess.run([sys.executable, str(script), text], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert step("/survey") == "What is your name?"
    assert step("Ivy") == "Which city?"  # a new process, the same database
    assert step("Lisbon") == "Thanks Ivy from Lisbon"


added_router = Router("adds")


@added_router.on(command="note")
async def add_a_row(msg: Inbound, ctx: Context) -> list[Reply]:
    from bot.storage.models import PromptRule
    from bot.core.inbound import utcnow

    ctx.session.add(PromptRule(name="from-handler", match={"en": ["x"]}, reply={"en": "y"}, priority=0,
                               regex=False, updated_at=utcnow()))  # added, never flushed by the handler
    return [TextReply("noted")]


async def test_rows_a_handler_only_adds_are_committed_with_the_reply(database_url: str) -> None:
    from sqlalchemy import func, select

    from bot.storage.models import PromptRule

    async with BotHarness(routers=[added_router], database_url=database_url) as bot:
        kim = bot.follower("kim", language="en")
        await kim.say("/note")
        assert kim.texts == ["noted"]
        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(PromptRule)) == 1
