"""deploy/nginx.conf made to run on one machine, for the tests and the benches that put it in front of
local servers: only what ties it to Docker changes (the upstream, the listening port, the worker user)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
_UPSTREAM = "server bot:8080"


def nginx_binary() -> str | None:
    """nginx's path (Debian puts it in /usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def loopback_config(upstreams: Sequence[str], *, port: int, text: str | None = None) -> str:
    """The shipped config (or ``text``) listening on ``127.0.0.1:port`` in front of ``upstreams``
    (``host:port`` each), with no worker user. ``ValueError`` when the config no longer says what is
    replaced: the caller would otherwise test another config than the one shipped."""
    text = SHIPPED_CONFIG.read_text("utf-8") if text is None else text
    for old, new in [("user nginx;", ""), ("listen 80;", f"listen 127.0.0.1:{port};")]:
        if old not in text:
            raise ValueError(f"{SHIPPED_CONFIG} no longer says {old!r}")
        text = text.replace(old, new)
    lines = text.splitlines()
    named = [i for i, line in enumerate(lines) if line.strip().startswith(_UPSTREAM)]
    if len(named) != 1:
        raise ValueError(f"{SHIPPED_CONFIG}: expected one '{_UPSTREAM}' upstream line, found {len(named)}")
    (at,) = named
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines[at:at + 1] = [f"{indent}server {address};" for address in upstreams]
    return "\n".join(lines) + "\n"
