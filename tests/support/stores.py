"""Stores for the nearest-store tests on each channel: open round the clock, so the answer does not
depend on when the test runs (hours in the store's zone are tested in tests/stores)."""

from __future__ import annotations

from typing import Any

from bot.stores import parse_stores, replace_stores

# WGS-84 positions; a WeChat phone reports them in GCJ-02.
XINTIANDI = (31.2218, 121.4706)
PEOPLES_SQUARE = (31.2337, 121.4692)  # about 1.3 km north of Xintiandi
STORES = {"stores": [
    {"id": "xintiandi", "name": {"zh_Hans": "新天地店", "en": "Xintiandi"}, "latitude": XINTIANDI[0],
     "longitude": XINTIANDI[1], "hours": {"mon-sun": "00:00-24:00"},
     "address": {"zh_Hans": "马当路245号", "en": "245 Madang Road"}},
    {"id": "beijing", "name": {"zh_Hans": "三里屯店", "en": "Sanlitun"}, "latitude": 39.9338,
     "longitude": 116.4549, "hours": {"mon-sun": "00:00-24:00"}},
]}


async def load_stores(sessions: Any) -> None:
    async with sessions() as session, session.begin():
        await replace_stores(session, parse_stores(STORES))
