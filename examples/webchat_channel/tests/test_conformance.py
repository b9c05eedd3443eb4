"""The channel passes engagebot's conformance kit: ``pip install -e . && pytest`` in this folder."""

import pytest

from bot.testing.conformance import ChannelConformance, ChannelDriver
from webchat_channel.testing import WebChatDriver


class TestWebChatConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return WebChatDriver()
