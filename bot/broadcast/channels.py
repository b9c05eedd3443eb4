"""The channels a worker-only process (``engagebot broadcast work``) sends through.

The same accounts ``engagebot run`` serves, built to send only: no webhook is served and Telegram
is not polled (the web instances receive; a second poller would take their updates). With the
embedded defaults they reach the simulators of a running ``engagebot run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.channels.base import Channel

if TYPE_CHECKING:
    from bot.app import Core

CHANNEL_NAMES = ("wechat", "telegram", "mock")


class SendChannels:
    """The started channels of a worker-only process; :meth:`close` stops them (and the mock sink)."""

    def __init__(self, channels: list[Channel], sink: Any = None) -> None:
        self.channels = channels
        self._sink = sink

    async def close(self) -> None:
        for channel in reversed(self.channels):
            await channel.stop()
        if self._sink is not None:
            await self._sink.close()


async def open_send_channels(core: Core, *, only: Sequence[str] = (), mock_sink: str | None = None,
                             mock_account: str = "mock", mock_rate: float | None = None,
                             mock_chat_rate: float | None = None) -> SendChannels:
    """Build and start the configured channels (``only`` these names, when given) to send only."""
    from bot.channels.telegram.adapter import TelegramChannel
    from bot.channels.telegram.plugin import telegram_config
    from bot.channels.wechat.plugin import wechat_link_channels
    from bot.simulation import load_simulator_credentials, simulators_to_mount

    if simulators_to_mount(core.settings):  # the embedded default: the simulators' stored credentials
        await load_simulator_credentials(core)
    wanted = set(only) or set(CHANNEL_NAMES)
    channels: list[Channel] = []
    if "wechat" in wanted:
        channels += wechat_link_channels(core)
    if "telegram" in wanted and (config := telegram_config(core)) is not None:
        channels.append(TelegramChannel(dispatch=core.dispatcher.dispatch, sessions=core.sessions, config=config,
                                        receive=False))
    sink = None
    sink_url = mock_sink or core.settings.mock_sink
    if "mock" in wanted and sink_url is not None:
        from bot.channels.mock import MOCK_CAPABILITIES, MockChannel, SqlDeliverySink

        sink = SqlDeliverySink(sink_url)
        await sink.open()
        caps = replace(MOCK_CAPABILITIES, max_sends_per_second=mock_rate or None,
                       max_sends_per_chat_per_second=mock_chat_rate or None)
        channels.append(MockChannel(dispatch=core.dispatcher.dispatch, account=mock_account, capabilities=caps,
                                    sink=sink))
    opened = SendChannels(channels, sink)
    try:
        for channel in channels:
            await channel.start()
    except BaseException:
        await opened.close()
        raise
    return opened
