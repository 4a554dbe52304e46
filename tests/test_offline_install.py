"""The README's offline install works with no package index: from a wheelhouse holding dealbot's
wheel and the locked version of each dependency, the very command the README shows resolves
dealbot and exactly the locked versions, and dealbot installed from its wheel migrates a database.

The wheelhouse is built without a network: dealbot's wheel with the installed build backend, each
locked dependency repacked as a wheel from this test environment (which CI installs from the lock),
so it holds what `pip wheel -r requirements.lock -w wheelhouse/ .` would download, and nothing
else."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# pip writes these itself on installing; a repacked wheel leaves them out.
INSTALL_RECORDS = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def offline_commands() -> list[list[str]]:
    """The commands of the README's offline code block, in order."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^### Offline.*?```bash\n(.*?)```", readme, re.S | re.M)
    assert section, "the README's Deploy section has an Offline part with its commands"
    lines = [line.split(" #")[0] for line in section.group(1).splitlines()]
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


def offline_env(tmp_path: Path) -> dict[str, str]:
    """No pip configuration of this machine (its find-links, extra indexes, constraints) and a
    proxy that refuses, so anything that tried the network would fail."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INPUT="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        HOME=str(tmp_path),
        PYTHONPATH="",
    )
    return env


def run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def locked_here() -> dict[str, str]:
    """Locked package → version, for the ones whose marker holds on this machine."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            if requirement.marker is None or Marker(str(requirement.marker)).evaluate():
                (specifier,) = requirement.specifier
                pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def build_dealbot_wheel(wheelhouse: Path, env: dict[str, str]) -> Path:
    # What `pip wheel … .` does for dealbot itself, from a copy of the files the image copies, so
    # the checkout gets no build/ or egg-info; the installed setuptools, since nothing is fetched.
    source = wheelhouse.parent / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    for package in {name.split(".")[0] for name in packages}:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                target = source / path.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            wheelhouse,
            source,
        ],
        cwd=wheelhouse.parent,
        env=env,
    )
    (wheel,) = wheelhouse.glob("dealbot-*.whl")
    return wheel


def repack(name: str, version: str, wheelhouse: Path) -> None:
    """The installed distribution NAME as a wheel, with a fresh RECORD. Console scripts are made
    again by pip from entry_points.txt, so the files outside site-packages are left out."""
    dist = metadata.distribution(name)
    assert dist.version == version, (
        f"{name} {dist.version} is installed, the lock says {version}: "
        "pip install -c requirements.lock -e '.[test]'"
    )
    assert dist.files is not None, name
    files = [
        file
        for file in dist.files
        if not str(file).startswith("..")
        and "__pycache__" not in file.parts
        and file.name not in INSTALL_RECORDS
    ]
    (info,) = {file.parts[0] for file in files if file.parts[0].endswith(".dist-info")}
    stem = re.sub(r"[-_.]+", "_", info.removesuffix(".dist-info").rsplit("-", 1)[0])
    records = []
    with zipfile.ZipFile(wheelhouse / f"{stem}-{dist.version}-py3-none-any.whl", "w") as wheel:
        for file in files:
            data = Path(str(dist.locate_file(file))).read_bytes()
            wheel.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{file.as_posix()},sha256={digest.decode()},{len(data)}")
        records.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(records) + "\n")


def test_dealbot_wheel_declares_the_licence_urls_and_this_python(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheel = build_dealbot_wheel(wheelhouse, offline_env(tmp_path))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        text = archive.read(meta).decode()
        (licence,) = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        licence_text = archive.read(licence).decode()
    assert "License-Expression: MIT" in text
    assert "License-File: LICENSE" in text
    assert licence_text.startswith("MIT License") and "dealbot contributors" in licence_text
    assert "Classifier: License ::" not in text  # PEP 639: the expression replaces them
    # The wording catalog is read at run time, so a wheel without it answers Chinese teams in English.
    assert "wording/locale/zh_CN/LC_MESSAGES/dealbot.po" in names
    for label in ("Homepage", "Source", "Issues"):
        assert f"Project-URL: {label}, https://" in text
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"Classifier: Programming Language :: Python :: {running}" in text
    (requires_python,) = re.findall(r"^Requires-Python: (.*)$", text, re.M)
    assert Version(running) in Requirement(f"python{requires_python}").specifier
    required = {
        Requirement(line.removeprefix("Requires-Dist: "))
        for line in text.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    }
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert required == {Requirement(line) for line in declared}  # the caps included


@pytest.mark.slow
def test_the_readme_offline_install_works_with_no_index(tmp_path: Path) -> None:
    commands = offline_commands()
    build, make_venv, install, check = (commands[0], commands[1], commands[2], commands[3])
    # The wheelhouse the README builds: the lock's versions and dealbot's own wheel.
    assert build == ["pip", "wheel", "-r", "requirements.lock", "-w", "wheelhouse/", "."]
    assert make_venv[:3] == ["python3", "-m", "venv"]
    assert install == ["pip", "install", "--no-index", "--find-links", "wheelhouse/", "dealbot"]
    assert check == ["dealbot", "db", "upgrade"]

    env = offline_env(tmp_path)
    wheelhouse = tmp_path / "wheelhouse"
    wheel = build_dealbot_wheel(wheelhouse, env)
    pins = locked_here()
    for name, version in pins.items():
        repack(name, version, wheelhouse)

    # The README's install, resolved as in a fresh virtualenv (nothing installed here counts) but
    # not unpacked: the wheelhouse alone yields dealbot and exactly the locked versions.
    report = tmp_path / "install.json"
    dry_run = ["--dry-run", "--ignore-installed", "--report", report]
    run([sys.executable, "-m", *install, *dry_run], cwd=tmp_path, env=env)
    chosen = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    dealbot_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chosen == {**pins, "dealbot": dealbot_version}

    # The installed dealbot runs from its wheel alone (its migrations and console script
    # included), on the locked dependencies `repack` found installed here.
    site = tmp_path / "site"
    pip_target = ["--no-index", "--no-deps", "--no-compile", "--target", site, wheel]
    run([sys.executable, "-m", "pip", "install", *pip_target], cwd=tmp_path, env=env)
    env.update(PYTHONPATH=str(site), DEALBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'offline.db'}")
    where = run([sys.executable, "-c", "import bot.cli; print(bot.cli.__file__)"], tmp_path, env)
    assert Path(where.strip()).is_relative_to(site)
    output = run([site / "bin" / check[0], *check[1:]], cwd=tmp_path, env=env)
    assert "database is up to date" in output
    with sqlite3.connect(tmp_path / "offline.db") as database:
        migrated = database.execute("SELECT version_num FROM alembic_version").fetchall()
    assert migrated == [(ScriptDirectory(str(ROOT / "models" / "migrations")).get_current_head(),)]
