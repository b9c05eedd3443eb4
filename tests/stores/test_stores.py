"""The stores file, opening hours in the store's zone, and the nearest stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.files import read_data_file
from bot.stores import StoresFileError, nearest_stores, parse_stores, replace_stores
from bot.stores.spec import parse_hours
from bot.testing import BotHarness
from tests.support.cli import engagebot, one_error_line

from ..test_examples import EXAMPLES

# Monday 2026-11-30: 12:00 in Shanghai and Hong Kong is 04:00 UTC.
MONDAY_NOON = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
STORE = {"id": "a", "name": {"en": "A"}, "latitude": 31.2, "longitude": 121.4, "timezone": "Asia/Shanghai"}


def test_hours_by_day_span_and_past_midnight() -> None:
    week = parse_hours({"mon-fri": "10:00-22:00", "sat": "10:00-14:00, 18:00-02:00", "sun": "closed"})
    assert week[0] == week[4] == [(600, 1320)]
    assert week[5] == [(600, 840), (1080, 1560)]  # 02:00 the next day
    assert week[6] == []
    across = parse_hours({"fri-mon": "09:00-17:00", "tue-thu": "closed"})  # a span across the week's end
    assert [d for d, ranges in sorted(across.items()) if ranges] == [0, 4, 5, 6]


@pytest.mark.parametrize(("store", "message"), [
    ({"hours": {"mon": "25:00-26:00"}}, "hours"),
    ({"hours": {"sun": "closed"}}, "missing: mon, tue, wed, thu, fri, sat"),
    ({"hours": {"funday": "10:00-12:00", "mon-sun": "closed"}}, "funday"),
    ({"hours": {"mon": "10:00-12:00", "mon-tue": "closed", "wed-sun": "closed"}}, "given twice"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ({"latitude": 91}, "latitude"),
    ({"name": {"klingon": "x"}}, "klingon"),
    ({"id": "Has Spaces"}, "id"),
])
def test_a_bad_store_is_refused_naming_it_and_the_field(store: dict, message: str) -> None:
    with pytest.raises(StoresFileError, match=message) as refused:
        parse_stores({"stores": [{**STORE, **store}]}, source="s.yaml")
    assert "s.yaml" in str(refused.value) and "stores[0]" in str(refused.value)


def test_two_stores_with_one_id_are_refused() -> None:
    with pytest.raises(StoresFileError, match="twice"):
        parse_stores({"stores": [STORE, STORE]})


async def test_nearest_open_first_with_hours_in_the_stores_zone(database_url: str) -> None:
    stores = parse_stores(read_data_file(EXAMPLES / "stores.yaml"))
    async with BotHarness(routers=[], database_url=database_url) as bot:
        async with bot.sessions() as session, session.begin():
            assert await replace_stores(session, stores) == (4, 0)
        near_people_square = (31.2304, 121.4737)
        async with bot.sessions() as session:
            noon = await nearest_stores(session, *near_people_square, now=MONDAY_NOON)
            late = await nearest_stores(session, *near_people_square, now=datetime(2026, 11, 30, 13, 30, tzinfo=UTC))
            sunday_hk = await nearest_stores(session, 22.28, 114.16, limit=1,
                                             now=datetime(2026, 12, 6, 4, 0, tzinfo=UTC), open_first=False)
    assert [s.slug for s in noon] == ["shanghai-xintiandi", "shanghai-jingan", "beijing-sanlitun"]
    assert 1000 < noon[0].distance_m < 2000 and noon[0].open_now
    assert noon[0].closes_at == datetime(2026, 11, 30, 22, 0, tzinfo=noon[0].closes_at.tzinfo)
    # 21:30 in Shanghai on a Monday: Jing'an closed at 21:00, Xintiandi is open until 22:00.
    # Open ones first among the stores near (Jing'an, closed, before Beijing's open one a city away).
    assert [(s.slug, s.open_now) for s in late] == [
        ("shanghai-xintiandi", True), ("shanghai-jingan", False), ("beijing-sanlitun", True)]
    assert late[1].opens_at == datetime(2026, 12, 1, 9, 0, tzinfo=late[1].opens_at.tzinfo)
    [central] = sunday_hk
    assert not central.open_now and central.opens_at is not None
    assert (central.opens_at.weekday(), central.opens_at.hour) == (0, 11)  # closed Sundays: Monday 11:00


def test_the_cli_loads_and_lists_and_refuses_a_bad_file_in_one_line(database_url: str, tmp_path) -> None:
    env = {"ENGAGEBOT_DATABASE_URL": database_url}
    loaded = engagebot("stores", "load", str(EXAMPLES / "stores.yaml"), env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 4 store(s)" in loaded.stdout and "gcj02" in loaded.stdout
    listed = engagebot("stores", "list", env=env)
    assert "shanghai-xintiandi" in listed.stdout and "Xintiandi" in listed.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("stores:\n  - id: x\n    name: {en: X}\n    latitude: 120\n    longitude: 1\n", "utf-8")
    line = one_error_line(engagebot("stores", "load", str(bad), env=env))
    assert "latitude" in line and "bad.yaml" in line
    assert "loaded 4" not in engagebot("stores", "list", env=env).stdout and "xintiandi" in engagebot(
        "stores", "list", env=env).stdout  # the refused file changed nothing


async def _nearest_of(database_url: str, stores: list[dict], position: tuple[float, float], now: datetime,
                      **kw: object) -> list:
    async with BotHarness(routers=[], database_url=database_url) as bot:
        async with bot.sessions() as session, session.begin():
            await replace_stores(session, parse_stores({"stores": stores}))
        async with bot.sessions() as session:
            return await nearest_stores(session, *position, now=now, **kw)


async def test_a_closing_time_follows_on_into_the_next_days_range_and_round_the_clock_has_none(
        database_url: str) -> None:
    late = {**STORE, "id": "late", "hours": {"mon": "18:00-24:00", "tue": "00:00-02:00", "wed-sun": "closed"}}
    always = {**STORE, "id": "always", "latitude": 31.21, "hours": {"mon-sun": "00:00-24:00"}}
    monday_2330 = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # Shanghai is UTC+8
    found = {s.slug: s for s in await _nearest_of(database_url, [late, always], (31.2, 121.4), monday_2330)}
    assert found["late"].open_now and found["late"].closes_at is not None
    assert (found["late"].closes_at.day, found["late"].closes_at.hour) == (1, 2)  # Tuesday 02:00
    assert found["always"].open_now and found["always"].closes_at is None and found["always"].opens_at is None


async def test_an_open_store_a_city_away_does_not_hide_the_closed_one_round_the_corner(database_url: str) -> None:
    corner = {**STORE, "id": "corner", "latitude": 31.2005, "hours": {"mon-sun": "09:00-10:00"}}
    night_owls = [{**STORE, "id": f"far{i}", "latitude": 39.9 + i / 100, "longitude": 116.4,
                   "hours": {"mon-sun": "00:00-24:00"}} for i in range(3)]
    near_open = {**STORE, "id": "near-open", "latitude": 31.21, "hours": {"mon-sun": "00:00-24:00"}}
    found = await _nearest_of(database_url, [corner, *night_owls, near_open], (31.2, 121.4), MONDAY_NOON)
    # Within a few km open ones come first; the far open ones come after, by distance.
    assert [s.slug for s in found] == ["near-open", "corner", "far0"]
