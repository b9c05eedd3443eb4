from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Point the ``engagebot`` command at the test database."""
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    return {"ENGAGEBOT_DATABASE_URL": database_url}
