"""Issue 8.7, tried as an attacker would against ``engagebot run``: the admin throttle cannot be
sidestepped by changing addresses the attacker owns anyway.

An IPv6 client is given a whole /64 (2**64 addresses) by its provider: counting its failures per
address would give it 2**64 times the allowance. The same client written as an IPv4-mapped IPv6
address (``::ffff:203.0.113.9``, what a dual-stack socket reports) is the same client too.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.support.process import http, running
from tests.support.servers import free_port

ADMIN_TOKEN = "admin-" + secrets.token_hex(16)


def _guess(base: str, forwarded_for: str) -> tuple[int, dict[str, str]]:
    status, headers, _body = http("POST", base + "/admin/redeem", {"code": "ABCDEFGH"},
                                  headers={"Authorization": "Bearer wrong-" + ADMIN_TOKEN,
                                           "X-Forwarded-For": forwarded_for})
    return status, headers


def test_rotating_ipv6_addresses_within_one_64_does_not_bypass_the_admin_throttle(tmp_path: Path) -> None:
    port = free_port()
    env = {"ENGAGEBOT_PORT": str(port), "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
           "ENGAGEBOT_ADMIN_TOKEN": ADMIN_TOKEN, "ENGAGEBOT_ADMIN_FAILURE_LIMIT": "3/minute",
           "ENGAGEBOT_HTTP__TRUSTED_PROXIES": "127.0.0.1", "ENGAGEBOT_SIMULATORS": "false"}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        # One attacker, a new address of its /64 for every guess.
        statuses = [_guess(server.url, f"2001:db8:1:2::{i:x}")[0] for i in range(1, 7)]
        assert statuses == [401, 401, 401, 429, 429, 429]
        status, headers = _guess(server.url, "2001:db8:1:2:ffff:ffff:ffff:fffe")
        assert status == 429 and int(headers["Retry-After"]) >= 1
        # Another /64 is another client (the next customer of the same provider).
        assert _guess(server.url, "2001:db8:1:3::1")[0] == 401

        # An IPv4 client is one address, however it is written.
        statuses = [_guess(server.url, a)[0] for a in ("203.0.113.9", "::ffff:203.0.113.9", "203.0.113.9")]
        assert statuses == [401, 401, 401]
        assert _guess(server.url, "::ffff:203.0.113.9")[0] == 429
        assert _guess(server.url, "203.0.113.10")[0] == 401  # its neighbour is not throttled
