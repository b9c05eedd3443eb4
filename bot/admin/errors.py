"""The admin service layer's failures; the API maps each to its status, the CLI prints its reason."""

from __future__ import annotations

from bot.errors import EngagebotError


class AdminError(EngagebotError):
    http_status = 400


class NotFound(AdminError):
    http_status = 404


class Forbidden(AdminError):
    """The role may call the route, but not with this option (releasing another agent's conversation)."""

    http_status = 403


class Conflict(AdminError):
    """The resource changed since the caller read it, or the write clashes with existing data."""

    http_status = 409


class Invalid(AdminError):
    """A value the models cannot check alone (a quota below what is claimed, a weak password)."""

    http_status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
