"""The admin service layer's failures, one family for every service (accounts, rules, the inbox...).

Each refusal carries a gettext message id and its parameters: ``str(exc)`` is the English text (the
API's ``reason``, the CLI's line), :meth:`AdminError.localized` the same in an operator's language (the
console). A parameter that is itself a word of ours (``Term``) is translated too; names, ids and
anything an operator typed are shown as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from bot.errors import EngagebotError


class Term(str):
    """A parameter of a refusal that is one of our own words (``N_("prompt rule")``): translated with it."""

    __slots__ = ()


class Named:
    """A thing and its name (``prompt rule 'greet'``): the kind (a message id) is translated, the name not."""

    __slots__ = ("kind", "name")

    def __init__(self, kind: str, name: object) -> None:
        self.kind = kind
        self.name = name

    def render(self, translate: Callable[[str], str] | None = None) -> str:
        return f"{translate(self.kind) if translate else self.kind} {self.name!r}"

    def __str__(self) -> str:
        return self.render()


@runtime_checkable
class Renders(Protocol):
    """A parameter that says itself in a language (``Named``, a reply window's ``WindowReason``)."""

    def render(self, translate: Callable[[str], str] | None = None) -> str: ...


def _fill(message: str, params: dict[str, Any], translate: Callable[[str], str] | None = None) -> str:
    if translate is not None:
        message = translate(message)
        params = {k: translate(v) if isinstance(v, Term) else v.render(translate) if isinstance(v, Renders) else v
                  for k, v in params.items()}
    return message.format(**params) if params else message


class AdminError(EngagebotError):
    """A refusal: ``message`` is a gettext message id (``N_``), ``params`` fill its ``{placeholders}``."""

    http_status = 400
    code = "error"  # the API's ``error`` field

    def __init__(self, message: str, /, **params: Any) -> None:
        self.message = message
        self.params = params
        super().__init__(_fill(message, params))

    def localized(self, gettext: Callable[[str], str]) -> str:
        """The refusal in the language ``gettext`` translates to."""
        return _fill(self.message, self.params, gettext)


class NotFound(AdminError):
    http_status = 404
    code = "notfound"


class Forbidden(AdminError):
    """The role may call the route, but not with this option (releasing another agent's conversation)."""

    http_status = 403
    code = "forbidden"


class Conflict(AdminError):
    """The resource changed since the caller read it, or the write clashes with existing data."""

    http_status = 409
    code = "conflict"


class Stale(Conflict):
    """The resource changed since the caller read it (its version moved): read it again, then edit."""


class Invalid(AdminError):
    """A value the models cannot check alone (a quota below what is claimed, a weak password).

    ``field`` names the input (``quota``, ``text``); ``reason`` is a message id (or a validator's own
    English words, shown as they are when no catalog knows them).
    """

    http_status = 422
    code = "invalid"

    def __init__(self, field: str, reason: str, /, **params: Any) -> None:
        self.field = field
        self.reason = reason
        self.message = reason
        self.params = params
        EngagebotError.__init__(self, f"{field}: {_fill(reason, params)}")

    def localized(self, gettext: Callable[[str], str]) -> str:
        return f"{self.field}: {_fill(self.reason, self.params, gettext)}"
