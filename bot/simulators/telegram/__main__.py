"""Run the simulator on its own: ``python -m bot.simulators.telegram --port 8081``.

Point the bot at ``http://127.0.0.1:8081/bot`` (base_url) and open ``http://127.0.0.1:8081/simulator/telegram``.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from . import TelegramBotAPISimulator, random_bot_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=None, help="the bot token to accept (default: a random one, printed)")
    parser.add_argument("--bot-username", default="engagebot_demo_bot")
    parser.add_argument("--enforce-limits", action="store_true")
    args = parser.parse_args()
    args.token = args.token or random_bot_token()
    sim = TelegramBotAPISimulator(args.token, bot_username=args.bot_username, enforce_limits=args.enforce_limits)
    print(f"Bot API base_url: http://{args.host}:{args.port}/bot   token: {args.token}")
    print(f"Chat page:        http://{args.host}:{args.port}/simulator/telegram")
    web.run_app(sim.make_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
