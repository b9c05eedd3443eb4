"""State leaves as plain records and comes back: fans, windows, posts, comments, scenes, broadcasts."""

from __future__ import annotations

import json

from .conftest import call, data, make_sim


async def test_state_round_trips_through_plain_records(clock, bot) -> None:
    sim = make_sim(clock)
    sim.callback_url = bot.url
    uid = sim.add_fan(screen_name="小李", language="en", following=True)
    await sim.send_text(uid, "hi")
    post = next(iter(sim.posts))
    cid, _ = await sim.comment(uid, post, "@engagebot_brand 你好")
    sim.create_scene("spring")
    records = sim.take_changes()
    json.dumps(records)  # plain JSON
    assert {kind for kind, _k, _d in records} == {"fan", "post", "comment", "scene", "meta"}
    await sim.close()

    again = make_sim(clock)
    again.restore([r for r in records if r[2] is not None])
    assert again.fans[uid].screen_name == "小李" and again.fans[uid].timeline == sim.fans[uid].timeline
    assert list(again.posts) == list(sim.posts) and again.comments[cid].text == "@engagebot_brand 你好"
    assert again.scenes["spring"].ticket == sim.scenes["spring"].ticket
    assert again.refusal(again.fans[uid]) is None  # the window survived
    assert again._next_id >= sim._next_id
    assert again.take_changes() == []  # nothing changed since the restore

    crashed = make_sim(clock)
    crashed.restore([r for r in records if r[2] is not None], after_crash=True)
    assert crashed._next_id >= sim._next_id + 1_000_000


async def test_a_queued_broadcast_is_delivered_after_restore(clock) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    sim = make_sim(clock, sendall_delay=10)
    client = TestClient(TestServer(sim.make_app()))
    await client.start_server()
    uid = sim.add_fan(following=True)
    status, body = await call(client, "POST", "/2/messages/sendall.json", type="text", data=data({"text": "hey"}))
    assert body["status"] == "queued"
    records = sim.take_changes()
    await client.close()

    again = make_sim(clock, sendall_delay=0)
    again.restore([r for r in records if r[2] is not None])
    await again.drain()
    assert [e["text"] for e in again.replies(uid)] == ["hey"]
    await again.close()
