"""bot.testing.nginx: the shipped nginx config made to run on loopback (no nginx needed here)."""

from __future__ import annotations

import pytest

from bot.testing.nginx import SHIPPED_CONFIG, loopback_config

pytestmark = pytest.mark.engine_neutral


def test_the_upstream_becomes_every_given_server_and_the_rest_stays_as_shipped() -> None:
    shipped = SHIPPED_CONFIG.read_text("utf-8")
    text = loopback_config(["127.0.0.1:9001", "127.0.0.1:9002"], port=8123)
    assert "server 127.0.0.1:9001;" in text and "server 127.0.0.1:9002;" in text
    assert "server bot:8080" not in text and "user nginx;" not in text and "listen 80;" not in text
    assert "listen 127.0.0.1:8123;" in text
    # Everything else (limits, locations, headers) as shipped.
    expected = (shipped.replace("user nginx;", "").replace("listen 80;", "listen 127.0.0.1:8123;")
                .replace("        server bot:8080 resolve;  # every replica answers to the service's name (nginx 1.27.3+)",
                         "        server 127.0.0.1:9001;\n        server 127.0.0.1:9002;"))
    assert text == expected


@pytest.mark.parametrize("broken", [
    lambda text: text.replace("server bot:8080", "server app:8080"),
    lambda text: text.replace("listen 80;", "listen 8080;"),
    lambda text: text.replace("server bot:8080 resolve;", "server bot:8080 resolve;\n        server bot:8080;"),
])
def test_a_config_that_no_longer_says_what_is_replaced_is_refused(broken) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        loopback_config(["127.0.0.1:9001"], port=8123, text=broken(SHIPPED_CONFIG.read_text("utf-8")))
