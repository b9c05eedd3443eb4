"""Typed services: the built-in ones as fields, an extension's own keyed by its type."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot import Context, Inbound, Kind, Reply, Router, Services, TextReply
from bot.testing import BotHarness


@dataclass
class Menu:
    dishes: list[str]


router = Router("menu")


@router.on(Kind.TEXT, keywords={"en": ["menu"]})
async def menu(msg: Inbound, ctx: Context) -> list[Reply]:
    found = ctx.services.require(Menu)
    return [TextReply(", ".join(found.dishes))]


async def test_a_handler_finds_its_own_service_by_type(database_url: str) -> None:
    services = Services()
    services.add(Menu(["noodles", "dumplings"]))
    async with BotHarness(routers=[router], database_url=database_url, services=services) as bot:
        amy = bot.follower("amy", language="en")
        await amy.say("menu")
        assert amy.last_text == "noodles, dumplings"
        assert bot.dispatcher.services.get(Menu) is services.get(Menu)


def test_lookups_are_typed_and_checked() -> None:
    services = Services()
    assert services.get(Menu) is None and services.prompt_rules is None
    with pytest.raises(LookupError):
        services.require(Menu)
    with pytest.raises(TypeError):
        services.add("not a menu", as_type=Menu)
    made = services.get_or_add(Menu, lambda: Menu(["tea"]))
    assert services.get_or_add(Menu, lambda: Menu([])) is made and services.require(Menu).dishes == ["tea"]
