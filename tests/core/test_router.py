"""The router: priority, per-locale keywords, regex, commands, conversation state, fallback."""

from __future__ import annotations

import asyncio
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


counted = Router("counted")
runs: list[str] = []


@counted.on(command="count")
async def count_runs(msg: Inbound, ctx: Context) -> list[Reply]:
    runs.append(msg.message_id or "")
    ctx.set_state("counted")  # a side effect a second run would repeat
    return [TextReply(f"run {len(runs)}")]


async def _stored(bot: BotHarness, message_id: str) -> tuple[int, int]:
    """(inbound rows with this platform id, reply rows answering them)."""
    from sqlalchemy import func, select

    from bot.storage.models import Message

    async with bot.sessions() as s:
        inbound = (await s.execute(select(Message.id).where(
            Message.direction == "in", Message.dedupe_key == message_id))).scalars().all()
        replies = await s.scalar(select(func.count()).select_from(Message).where(Message.in_reply_to.in_(inbound)))
    return len(inbound), replies


async def test_same_platform_message_id_is_handled_once(database_url: str) -> None:
    runs.clear()
    async with BotHarness(routers=[counted, router], database_url=database_url) as bot:
        first = await bot.channel.receive("hal", Kind.COMMAND, "/count", message_id="m-1")
        again = await bot.channel.receive("hal", Kind.COMMAND, "/count", message_id="m-1")  # a platform retry
        assert first == again == [TextReply("run 1")]
        assert runs == ["m-1"]  # the handler ran once: the retry was answered from the database
        assert await _stored(bot, "m-1") == (1, 1)
        nxt = await bot.channel.receive("hal", Kind.COMMAND, "/count", message_id="m-2")
        assert nxt == [TextReply("run 2")] and runs == ["m-1", "m-2"]


async def test_retries_arriving_together_run_the_handler_once(database_url: str) -> None:
    runs.clear()
    async with BotHarness(routers=[counted, router], database_url=database_url) as bot:
        answers = await asyncio.gather(*(bot.channel.receive("ida", Kind.COMMAND, "/count", message_id="m-9")
                                         for _ in range(3)))
        assert answers == [[TextReply("run 1")]] * 3
        assert runs == ["m-9"]
        assert await _stored(bot, "m-9") == (1, 1)


async def test_a_retry_after_a_restart_is_answered_from_the_database(database_url: str) -> None:
    runs.clear()
    async with BotHarness(routers=[counted, router], database_url=database_url) as bot:
        assert await bot.channel.receive("jo", Kind.COMMAND, "/count", message_id="m-3") == [TextReply("run 1")]
    async with BotHarness(routers=[counted, router], database_url=database_url) as restarted:
        assert await restarted.channel.receive("jo", Kind.COMMAND, "/count", message_id="m-3") == [
            TextReply("run 1")]
        assert runs == ["m-3"]
        assert await _stored(restarted, "m-3") == (1, 1)


async def test_two_instances_racing_on_one_message_store_it_once(database_url: str) -> None:
    """Two dispatchers (two instances) get the same retry at once: one runs, the other reads its answer."""
    runs.clear()
    async with BotHarness(routers=[counted, router], database_url=database_url) as one, \
            BotHarness(routers=[counted, router], database_url=database_url) as two:
        answers = await asyncio.gather(one.channel.receive("kay", Kind.COMMAND, "/count", message_id="m-4"),
                                       two.channel.receive("kay", Kind.COMMAND, "/count", message_id="m-4"))
        assert answers[0] == answers[1] and answers[0] in ([TextReply("run 1")], [TextReply("run 2")])
        assert len(runs) in (1, 2) and await _stored(one, "m-4") == (1, 1)  # one exchange is kept


async def test_the_same_platform_id_on_another_account_is_another_message(database_url: str) -> None:
    from bot.channels.mock import MockChannel

    runs.clear()
    async with BotHarness(routers=[counted, router], database_url=database_url) as bot:
        other = MockChannel(dispatch=bot.dispatcher.dispatch, account="other")
        elsewhere = MockChannel(dispatch=bot.dispatcher.dispatch, channel_name="mock2")
        await bot.channel.receive("lu", Kind.COMMAND, "/count", message_id="m-5")
        assert await other.receive("lu", Kind.COMMAND, "/count", message_id="m-5") == [TextReply("run 2")]
        assert await elsewhere.receive("lu", Kind.COMMAND, "/count", message_id="m-5") == [TextReply("run 3")]
        assert runs == ["m-5"] * 3
        assert await _stored(bot, "m-5") == (3, 3)


async def test_messages_without_a_platform_id_are_never_deduplicated(database_url: str) -> None:
    from bot.core.inbound import Inbound as In

    runs.clear()
    async with BotHarness(routers=[counted, router], database_url=database_url) as bot:
        msg = In(channel="mock", account="mock", external_id="mo", kind=Kind.COMMAND, text="/count", message_id=None)
        first = await bot.dispatcher.dispatch(msg, capabilities=bot.channel.capabilities)
        second = await bot.dispatcher.dispatch(msg, capabilities=bot.channel.capabilities)
        assert (first.replies, second.replies) == ([TextReply("run 1")], [TextReply("run 2")])
        assert not first.duplicate and not second.duplicate


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
    from bot.core.clock import utcnow
    from bot.storage.models import PromptRule

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
