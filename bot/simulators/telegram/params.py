"""Bot API errors and parameter readers.

Parameters arrive as Telegram gets them: strings from form or multipart bodies (objects JSON-encoded),
native JSON values from a JSON body, ``Upload`` objects for multipart file parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class APIError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            data["parameters"] = self.parameters
        return data


def bad(description: str) -> APIError:
    return APIError(400, f"Bad Request: {description}")


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


def scope_key(scope: dict[str, Any] | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


# -- parameter readers -----------------------------------------------------------------------------------
def p_str(p: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = p.get(name)
    if value is None:
        return default
    if isinstance(value, Upload):
        raise bad(f"parameter \"{name}\" must be a string")
    return value if isinstance(value, str) else json.dumps(value)


def p_int(p: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = p.get(name)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or isinstance(value, (dict, list, Upload)):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise bad(f"invalid {name} specified") from None


def p_bool(p: dict[str, Any], name: str) -> bool:
    value = p.get(name)
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def p_json(p: dict[str, Any], name: str, what: str = "JSON object") -> Any:
    value = p.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise bad(f"can't parse {what}") from None
    if isinstance(value, Upload):
        raise bad(f"can't parse {what}")
    return value
