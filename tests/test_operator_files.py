"""Every file an operator gives engagebot (rules, promotions, settings) is refused in one line naming it.

The real ``engagebot`` command runs in a subprocess: a deeply nested file, an impossible date or a
YAML syntax error prints ``engagebot: <file>...`` and nothing is loaded; never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import engagebot, one_error_line

pytestmark = pytest.mark.engine_neutral  # the PostgreSQL pass leaves these to the SQLite pass (tests/conftest.py)

RULE = "rules:\n  - name: hours\n    match: {en: [hours]}\n    reply: {en: Open 10-22.}\n"
PROMO = ("promotions:\n  - slug: hotpot\n    title: {en: Hotpot}\n    starts_at: 2026-02-01\n"
         "    validity: {until: 2026-12-31}\n")


def _env(database_url: str) -> dict[str, str]:
    return {"ENGAGEBOT_DATABASE_URL": database_url}


def _command(kind: str, path: Path) -> list[str]:
    return {"prompts": ["prompts", "load", str(path)], "promo": ["promo", "load", str(path)],
            "config": ["--config", str(path), "db", "upgrade"]}[kind]


def _listed(kind: str, database_url: str, tmp_path: Path) -> str:
    done = engagebot(*(["prompts", "list"] if kind == "prompts" else ["promo", "list"]),
                     env=_env(database_url), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("kind", ["prompts", "promo", "config"])
@pytest.mark.parametrize("nesting", ["flow", "block"])
def test_deeply_nested_yaml_is_one_line_naming_the_file(
        kind: str, nesting: str, tmp_path: Path, database_url: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    if nesting == "flow":
        path.write_text("rules: " + "[" * 100_000 + "\n", "utf-8")
    else:
        path.write_text("".join(f"{'  ' * depth}k{depth}:\n" for depth in range(200)), "utf-8")
    line = one_error_line(engagebot(*_command(kind, path), env=_env(database_url), cwd=tmp_path))
    assert str(path) in line and "nested deeper than 50 levels" in line, line


def test_deeply_nested_toml_config_is_one_line_naming_the_file(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("port = " + "[" * 100_000 + "\n", "utf-8")
    line = one_error_line(engagebot("--config", str(path), "db", "upgrade", env=_env(database_url), cwd=tmp_path))
    assert line == f"engagebot: config file {path}: nested too deeply"


# TOML nests without recursing in its parser: dotted keys (k.k.k... = 1; tomllib's time is
# quadratic in their parts: the 1 MB one ran for hours), table headers, inline tables in a dotted key.
DEEP_TOML = {
    "dotted-key-1mb": "k" + ".k" * 500_000 + " = 1\n",
    "dotted-key-2000": "k" + ".k" * 2000 + " = 1\n",
    "quoted-dotted-key": '"a"' + ' . "a"' * 100 + " = 1\n",
    "table-headers": "".join(f"[{'.'.join(['t'] * depth)}]\n" for depth in range(1, 60)),
    "inline-tables": "a.b.c.d.e.f.g.h.i.j = " + "{k = " * 45 + "1" + "}" * 45 + "\n",
}


@pytest.mark.parametrize("kind", ["prompts", "promo", "config"])
@pytest.mark.parametrize("text", DEEP_TOML.values(), ids=DEEP_TOML.keys())
def test_toml_nested_deeply_without_brackets_is_one_line_naming_the_file_and_fast(
        kind: str, text: str, tmp_path: Path, database_url: str) -> None:
    path = tmp_path / f"{kind}.toml"
    path.write_text(text, "utf-8")
    line = one_error_line(engagebot(*_command(kind, path), env=_env(database_url), cwd=tmp_path, timeout=30))
    assert str(path) in line and "nested deeper than 50 levels" in line, line


def test_toml_nested_50_levels_is_read(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("k" + ".k" * 48 + " = 1\n", "utf-8")  # 50 levels with the file itself, like YAML
    line = one_error_line(engagebot("prompts", "load", str(path), env=_env(database_url), cwd=tmp_path))
    assert line == f"engagebot: {path}: rules: Field required; k: Extra inputs are not permitted", line


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("starts_at: 2026-02-01", "starts_at: 2026-02-30",
     "promotions[0] ('hotpot') field starts_at: 2026-02-30 is not a date (day is out of range for month)"),
    ("until: 2026-12-31", "until: 2026-04-31",
     "promotions[0] ('hotpot') field validity.until: 2026-04-31 is not a date (day is out of range for month)"),
    ("starts_at: 2026-02-01", "starts_at: 2026-13-01 10:00:00",
     "promotions[0] ('hotpot') field starts_at: 2026-13-01 10:00:00 is not a date (month must be in 1..12)"),
])
def test_impossible_date_in_a_promotion_names_the_file_entry_and_field(
        old: str, new: str, expected: str, tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text(PROMO.replace(old, new), "utf-8")
    line = one_error_line(engagebot("promo", "load", str(path), env=_env(database_url), cwd=tmp_path))
    assert line == f"engagebot: {path}: {expected}"
    assert "hotpot" not in _listed("promo", database_url, tmp_path)


def test_impossible_date_in_a_rules_file_names_the_file_rule_and_field(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE + "  - name: new-year\n    match: {en: [new year]}\n    reply: {en: 2026-13-01}\n", "utf-8")
    line = one_error_line(engagebot("prompts", "load", str(path), env=_env(database_url), cwd=tmp_path))
    assert line == (f"engagebot: {path}: rules[1] ('new-year') field reply.en: "
                    "2026-13-01 is not a date (month must be in 1..12)")
    assert "hours" not in _listed("prompts", database_url, tmp_path)  # the good rule was not loaded either


def test_impossible_date_in_the_config_file_names_the_file_and_key(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("port: 8080\ntimezone: 2026-02-30\n", "utf-8")
    line = one_error_line(engagebot("--config", str(path), "db", "upgrade", env=_env(database_url), cwd=tmp_path))
    assert line == (f"engagebot: config file {path}: key 'timezone': "
                    "2026-02-30 is not a date (day is out of range for month)")


@pytest.mark.parametrize(("kind", "text", "where"), [
    ("prompts", RULE + "  - name: x\n    match: {en: [a, b}\n", "line 6, column 22"),
    ("promo", PROMO + "  - slug: tea\n   title: {en: Tea}\n", "line 7, column 4"),
    ("config", "port: 8080\nhost: 'unclosed\n", "line 3, column 1"),
    ("prompts", RULE + "\ttab: 1\n", "line 5, column 1"),
])
def test_yaml_syntax_errors_name_the_file_line_and_column(
        kind: str, text: str, where: str, tmp_path: Path, database_url: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text, "utf-8")
    line = one_error_line(engagebot(*_command(kind, path), env=_env(database_url), cwd=tmp_path))
    label = "config file " if kind == "config" else ""
    assert line.startswith(f"engagebot: {label}{path}: not valid YAML at {where}: "), line
    assert "<unicode string>" not in line


def test_a_key_given_twice_is_refused_naming_the_line(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE + "    reply: {en: Open 9-21.}\n", "utf-8")
    line = one_error_line(engagebot("prompts", "load", str(path), env=_env(database_url), cwd=tmp_path))
    assert line == (f"engagebot: {path}: not valid YAML at line 5, column 5: "
                    "the key 'reply' appears twice in this mapping")


def test_a_value_yaml_cannot_build_is_named_by_line(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE.replace("priority", "x") + "    priority: !!int twelve\n", "utf-8")
    line = one_error_line(engagebot("prompts", "load", str(path), env=_env(database_url), cwd=tmp_path))
    assert line.startswith(f"engagebot: {path}: not valid YAML at line 5, column 15: cannot read this value: ")
