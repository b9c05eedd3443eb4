"""Built-in handlers: welcome, language switch, asking for a person, help, offers, stores, prompt-reply rules, other kinds, fallback."""

from bot import Router

from . import fallback, handoff, help, language, offers, prompts, stores, welcome


def default_router() -> Router:
    """All built-in handlers in one router (each module owns its own)."""
    root = Router("builtin")
    root.include(language.router, handoff.router, help.router, welcome.router, offers.router, stores.router, prompts.router,
                 fallback.router)
    return root


__all__ = ["default_router"]
