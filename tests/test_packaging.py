"""What a deployer copies and trusts: `.env.example` names every setting with its real default and
is what `dealbot config example` prints; the lock pins a version of every dependency that
pyproject.toml allows; pre-1.0 dependencies are capped. (The licence, URLs and Pythons dealbot's
wheel declares: tests/test_offline_install.py.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import Settings
from commands.dispatch import unqualified_admins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / ".env.example"


def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def env_names() -> dict[str, str]:
    """Each setting's environment name, by field name."""
    return {
        name: str(field.validation_alias or name.upper())
        for name, field in Settings.model_fields.items()
    }


def example_lines() -> dict[str, str]:
    """NAME → the value shown on each `# NAME=value` line of .env.example."""
    return dict(re.findall(r"^# ([A-Z][A-Z0-9_]+)=(.*)$", EXAMPLE.read_text(), re.M))


def test_env_example_lists_every_setting_once_and_nothing_else() -> None:
    shown = re.findall(r"^# ([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.M)
    assert sorted(shown) == sorted(env_names().values())


def test_env_example_is_what_dealbot_config_example_prints() -> None:
    printed = CliRunner().invoke(app, ["config", "example"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == EXAMPLE.read_text(), (
        "run `dealbot config example > .env.example` after changing bot/settings.py"
    )


def test_admins_written_as_env_example_shows_them_are_admins() -> None:
    note = re.search(r"((?:^# (?![A-Z_]+=).*\n)+)# DEALBOT_ADMINS=", EXAMPLE.read_text(), re.M)
    assert note is not None
    shown = re.findall(r"\b[a-z]+:\w+", note.group(1))
    assert shown and unqualified_admins(shown) == []


def test_uncommenting_every_line_of_env_example_gives_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in env_names().values():
        monkeypatch.delenv(name, raising=False)
    filled = tmp_path / ".env"
    filled.write_text(re.sub(r"^# ([A-Z][A-Z0-9_]+=)", r"\1", EXAMPLE.read_text(), flags=re.M))
    loaded = Settings(_env_file=filled)  # type: ignore[call-arg]
    for name, field in Settings.model_fields.items():
        expected = "" if field.default is None else field.default
        assert getattr(loaded, name) == expected, env_names()[name]
    # An empty credential is no credential: no platform comes up half-configured.
    assert loaded.platforms == []


def locked() -> dict[str, tuple[Version, str]]:
    """Package → (pinned version, environment marker or "") from requirements.lock."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        pins[canonicalize_name(requirement.name)] = (
            Version(specifier.version),
            str(requirement.marker or ""),
        )
    return pins


def test_the_lock_pins_an_allowed_version_of_every_dependency() -> None:
    pins = locked()
    for line in project()["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{name} is not in requirements.lock: compile it again (README: Deploy)"
        )
        assert pins[name][0] in requirement.specifier, f"{name}=={pins[name][0]} ∉ {requirement}"


def test_every_pre_1_0_dependency_has_an_upper_bound() -> None:
    pins = locked()
    for line in project()["dependencies"]:
        requirement = Requirement(line)
        pinned = pins[canonicalize_name(requirement.name)][0]
        if pinned.major == 0:
            bounds = [spec for spec in requirement.specifier if spec.operator in ("<", "<=", "~=")]
            assert bounds, f"{requirement.name} {pinned} is pre-1.0 and has no upper bound"
