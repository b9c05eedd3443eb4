"""The example channel (examples/webchat_channel) passes the conformance kit, as its own tests do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.testing.conformance import ChannelConformance, ChannelDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "webchat_channel"))
from webchat_channel.testing import WebChatDriver


class TestWebChatConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return WebChatDriver()
