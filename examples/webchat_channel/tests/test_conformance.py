"""The channel passes engagebot's conformance kit: ``pip install -e . && pytest`` in this folder."""

import pytest
from webchat_channel.testing import WebChatDriver

from bot.testing.conformance import ChannelConformance, ChannelDriver


class TestWebChatConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return WebChatDriver()
