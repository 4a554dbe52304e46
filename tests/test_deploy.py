"""The deployment files say what the code does: every `dealbot` command line in the Procfile, the
image's entrypoint and CMD, compose.yaml, the Kubernetes manifests and the README's Deploy section
parses against the real CLI (command path, options, values); every environment variable they set is
a setting of bot/settings.py or an option's own variable; the paths they probe answer; the image
copies every package and installs from the lock. No container is built here (none can be)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.core
import typer.main
import yaml

from bot import cli, env_example
from bot.app import build
from bot.settings import Settings
from bot.web import create_app
from tests.fakes.asgi import LiveServer

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "deploy" / "kubernetes"
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
# What the shell would put in place of the variables the files use.
SHELL_VALUES = {"$PORT": "8000", "${PORT}": "8000"}
# Set by the Dockerfile for Python and pip themselves, not for dealbot.
PYTHON_RUNTIME_VARIABLES = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
}
# Debian's CJK font packages and the family each installs, as matplotlib names it.
FONT_PACKAGES = {
    "fonts-noto-cjk": "Noto Sans CJK JP",
    "fonts-wqy-zenhei": "WenQuanYi Zen Hei",
    "fonts-wqy-microhei": "WenQuanYi Micro Hei",
}


# -- the real CLI ---------------------------------------------------------------------------------


class NotADealbotCommand(Exception):
    pass


def cli_tree() -> typer.core.TyperGroup:
    return typer.main.get_command(cli.app)  # type: ignore[return-value]


def walk(command: Any) -> Iterator[Any]:
    yield command
    if isinstance(command, typer.core.TyperGroup):
        for sub in command.commands.values():
            yield from walk(sub)


def check_dealbot_command(argv: list[str]) -> None:
    """Parse ARGV (what follows `dealbot`) as the CLI would, without running it: an unknown command
    or option, or a value of the wrong type, raises NotADealbotCommand with the CLI's message."""
    argv = [SHELL_VALUES.get(arg, arg) for arg in argv]
    command: Any = cli_tree()
    path = ["dealbot"]
    while isinstance(command, typer.core.TyperGroup) and argv and argv[0] in command.commands:
        path.append(argv[0])
        command = command.commands[argv.pop(0)]
    if isinstance(command, typer.core.TyperGroup) and not command.invoke_without_command:
        raise NotADealbotCommand(
            f"{' '.join(path)} needs one of {sorted(command.commands)}: {argv}"
        )
    try:
        command.make_context(" ".join(path), argv)
    except Exception as error:
        # The CLI's usage errors, the ones `dealbot` exits 2 with.
        if getattr(error, "exit_code", None) == 2:
            raise NotADealbotCommand(f"{' '.join(path)} {argv}: {error}") from error
        raise


def env_names_dealbot_reads() -> set[str]:
    names = set(env_example.setting_names())
    for command in walk(cli_tree()):
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            names.update([envvar] if isinstance(envvar, str) else envvar or [])
    return names


def test_the_command_checker_refuses_what_dealbot_would() -> None:
    check_dealbot_command(["serve", "--host", "0.0.0.0", "--port", "$PORT"])
    check_dealbot_command(["worker", "--metrics-port", "9100"])
    for wrong in (
        ["serve", "--hots", "0.0.0.0"],
        ["serve", "--port", "eighty"],
        ["db"],
        ["db", "downgrade"],
        ["sevre"],
    ):
        with pytest.raises(NotADealbotCommand):
            check_dealbot_command(wrong)
    assert "SLACK_BOT_TOKEN" in env_names_dealbot_reads()
    assert "DEALBOT_METRICS_PORT" in env_names_dealbot_reads()  # the worker's --metrics-port
    assert "SLACK_TOKEN" not in env_names_dealbot_reads()


# -- reading the files ----------------------------------------------------------------------------


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name: shlex.split(command)
        for name, command in (line.split(":", 1) for line in lines if line.strip())
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile_env() -> dict[str, str]:
    names = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            names.update(pair.split("=", 1) for pair in shlex.split(rest))
    return names


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def dealbot_services() -> dict[str, dict[str, Any]]:
    """compose.yaml's services that run the dealbot image (not Postgres)."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if "build" in service or str(service.get("image", "")).startswith("dealbot")
    }


def kubernetes_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def kubernetes(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in kubernetes_documents() if doc["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in kubernetes("Deployment") + kubernetes("Job"):
        yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def readme_deploy_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Deploy\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "the README has a Deploy section"
    return match.group(1)


def readme_dealbot_commands() -> list[list[str]]:
    """`dealbot …` as the README's Deploy section shows it, in code blocks and inline code (not the
    image's name after `-t`, nor the database's after `-U`)."""
    section = readme_deploy_section()
    snippets = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    inline = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", section, flags=re.S))
    snippets += [snippet.replace("\n", " ") for snippet in inline]
    found = []
    for snippet in snippets:
        for line in snippet.splitlines():
            for part in re.split(r"&&|\|\||;|\|", line.split(" #")[0]):
                words = shlex.split(part.replace(">", " > "))
                for at, word in enumerate(words):
                    if word != "dealbot" or (at and words[at - 1] in ("-t", "-U")):
                        continue
                    rest = words[at + 1 :]
                    rest = rest[: rest.index(">")] if ">" in rest else rest
                    if rest:
                        found.append(rest)
    return found


# -- commands -------------------------------------------------------------------------------------


def test_every_procfile_line_runs_a_real_dealbot_command() -> None:
    processes = procfile()
    assert {"release", "web", "worker"} <= processes.keys()
    assert processes["release"] == ["dealbot", "db", "upgrade"]
    for words in processes.values():
        assert words[0] == "dealbot"
        check_dealbot_command(words[1:])


def entrypoint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The image's entrypoint run as the image runs it (so by its own shebang, which needs the
    executable bit), with the `dealbot` of this environment on the PATH."""
    scripts = Path(sys.executable).parent
    assert (scripts / "dealbot").exists(), "dealbot is installed (pip install -e .)"
    env = {
        **os.environ,
        "PATH": f"{scripts}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "DEALBOT_DATABASE_URL": f"sqlite:///{cwd / 'image.db'}",
    }
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_entrypoint_migrates_then_runs_the_worker_and_runs_other_commands_as_they_are(
    tmp_path: Path,
) -> None:
    example = entrypoint("config", "example", cwd=tmp_path)
    assert example.returncode == 0, example.stderr
    assert example.stdout == (ROOT / ".env.example").read_text()
    assert not (tmp_path / "image.db").exists(), "no migration before other commands"

    worker = entrypoint("worker", "--once", "--now", "2026-12-01T09:00:00+08:00", cwd=tmp_path)
    assert worker.returncode == 0, worker.stderr
    lines = worker.stdout.splitlines()
    assert lines[0] == "database is up to date"
    assert lines[1].startswith("scans: 0 overdue")

    (tmp_path / "image.db").unlink()
    serve = entrypoint("serve", "--help", cwd=tmp_path)  # migrates, then the command is dealbot's
    assert serve.returncode == 0, serve.stderr
    assert serve.stdout.splitlines()[0] == "database is up to date"
    assert "--port" in serve.stdout


def test_the_image_runs_the_entrypoint_with_a_real_command() -> None:
    instructions = dockerfile_instructions()
    entrypoint = json.loads(next(rest for keyword, rest in instructions if keyword == "ENTRYPOINT"))
    copied = [rest.split() for keyword, rest in instructions if keyword == "COPY"]
    assert ["deploy/docker-entrypoint.sh", f"/usr/local/bin/{entrypoint[0]}"] in copied
    assert entrypoint == ["dealbot-entrypoint"]
    check_dealbot_command(
        json.loads(next(rest for keyword, rest in instructions if keyword == "CMD"))
    )
    user = [rest for keyword, rest in instructions if keyword == "USER"]
    assert user and user[-1] not in ("root", "0"), "the image runs as a user of its own"


def test_compose_services_run_real_commands_after_a_healthy_database() -> None:
    services = dealbot_services()
    assert {"web", "worker"} <= services.keys()
    database = compose()["services"]["db"]
    assert database["healthcheck"]["test"]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in database["volumes"])
    for name, service in services.items():
        check_dealbot_command(service["command"])
        assert service["depends_on"]["db"]["condition"] == "service_healthy", name
        assert service["env_file"] == ".env", name


def test_kubernetes_containers_run_real_commands_through_the_entrypoint() -> None:
    seen = {}
    for name, pod in pod_specs():
        for container in pod["containers"]:
            assert "command" not in container, f"{name} keeps the image's entrypoint"
            check_dealbot_command(container["args"])
            seen[name] = container["args"][:2]
    assert seen == {
        "dealbot-web": ["serve", "--host"],
        "dealbot-worker": ["worker"],
        "dealbot-migrate": ["db", "upgrade"],
    }


def test_the_readme_deploy_section_shows_real_commands() -> None:
    commands = readme_dealbot_commands()
    assert ["db", "upgrade"] in commands and ["config", "example"] in commands
    for argv in commands:
        check_dealbot_command(argv)


# -- environment ----------------------------------------------------------------------------------


def test_every_variable_the_deployment_sets_is_one_dealbot_reads() -> None:
    known = env_names_dealbot_reads()
    set_by: dict[str, set[str]] = {}
    for name, service in dealbot_services().items():
        set_by[f"compose {name}"] = set(service.get("environment", {}))
    for doc in kubernetes("ConfigMap"):
        set_by[doc["metadata"]["name"]] = set(doc.get("data", {}))
    for doc in kubernetes("Secret"):
        set_by[doc["metadata"]["name"]] = set(doc.get("stringData", {})) | set(doc.get("data", {}))
    for name, pod in pod_specs():
        set_by[name] = {
            variable["name"]
            for container in pod["containers"]
            for variable in container.get("env", [])
        }
    # The lines a user uncomments, too.
    for path in KUBERNETES.glob("*.yaml"):
        set_by[f"{path.name} comments"] = set(
            re.findall(r"^\s*#\s*([A-Z][A-Z0-9_]{2,}):", path.read_text(), re.M)
        )
    set_by["Dockerfile"] = set(dockerfile_env()) - PYTHON_RUNTIME_VARIABLES
    unknown = {where: sorted(names - known) for where, names in set_by.items() if names - known}
    assert not unknown, f"not settings of bot/settings.py nor CLI option variables: {unknown}"
    assert set_by["dealbot-secrets"] and set_by["dealbot-config"]


def test_kubernetes_pods_take_their_settings_from_the_configmap_and_secret() -> None:
    config_maps = {doc["metadata"]["name"] for doc in kubernetes("ConfigMap")}
    secrets = {doc["metadata"]["name"] for doc in kubernetes("Secret")}
    for name, pod in pod_specs():
        for container in pod["containers"]:
            sources = container["envFrom"]
            assert {
                ref["configMapRef"]["name"] for ref in sources if "configMapRef" in ref
            } <= config_maps and config_maps, name
            assert {
                ref["secretRef"]["name"] for ref in sources if "secretRef" in ref
            } <= secrets and secrets, name


# -- ports, probes, images ------------------------------------------------------------------------


def option_value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_ports_agree_across_commands_probes_services_and_scrape_annotations() -> None:
    pods = {name: pod["containers"][0] for name, pod in pod_specs()}
    web, worker = pods["dealbot-web"], pods["dealbot-worker"]
    web_ports = {port["name"]: port["containerPort"] for port in web["ports"]}
    assert web_ports["http"] == int(option_value(web["args"], "--port"))
    for probe in ("readinessProbe", "livenessProbe"):
        assert web[probe]["httpGet"]["port"] in web_ports
    worker_env = {variable["name"]: variable["value"] for variable in worker["env"]}
    assert {port["name"]: port["containerPort"] for port in worker["ports"]} == {
        "metrics": int(worker_env["DEALBOT_METRICS_PORT"])
    }
    for doc in kubernetes("Deployment"):
        template = doc["spec"]["template"]
        ports = {port["containerPort"] for port in template["spec"]["containers"][0]["ports"]}
        assert int(template["metadata"]["annotations"]["prometheus.io/port"]) in ports
        assert (
            doc["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        )
    for service in kubernetes("Service"):
        matched = [
            doc
            for doc in kubernetes("Deployment")
            if service["spec"]["selector"].items()
            <= doc["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, service["metadata"]["name"]
        names = {
            port["name"]
            for port in matched[0]["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= names
    services = dealbot_services()
    assert option_value(services["web"]["command"], "--port") == "8000"
    assert services["web"]["ports"] == ["8000:8000"]
    assert services["worker"]["expose"] == [
        option_value(services["worker"]["command"], "--metrics-port")
    ]
    exposed = next(
        rest for keyword, rest in dockerfile_instructions() if keyword == "EXPOSE"
    ).split()
    assert set(exposed) == {"8000", "9100"}


def probed_paths() -> set[str]:
    paths = set()
    for _, pod in pod_specs():
        for container in pod["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    paths.add(container[probe]["httpGet"]["path"])
    for doc in kubernetes("Deployment"):
        paths.add(doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"])
    health = " ".join(dealbot_services()["web"]["healthcheck"]["test"])
    paths.update(re.findall(r"http://127\.0\.0\.1:8000(/\w+)", health))
    return paths


def test_the_paths_probes_and_scrapers_ask_for_answer_on_the_web_app(tmp_path: Path) -> None:
    paths = probed_paths()
    assert paths == {"/healthz", "/metrics"}
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    bot = build(settings, database_url=f"sqlite:///{tmp_path / 'probe.db'}")
    server = LiveServer(create_app(bot))
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            for path in paths:
                assert client.get(path).status_code == 200, path
    finally:
        server.close()
        bot.engine.dispose()


def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_images_are_tagged_with_the_project_version() -> None:
    version = project()["project"]["version"]
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["newTag"] == version
    for _, pod in pod_specs():
        assert {container["image"] for container in pod["containers"]} == {image["name"]}
    for service in dealbot_services().values():
        assert service["image"] == f"dealbot:{version}"


def test_the_kustomization_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    kinds = [doc["kind"] for doc in kubernetes_documents() if doc["kind"] != "Kustomization"]
    assert sorted(kinds) == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Job",
        "Secret",
        "Service",
        "Service",
    ]
    (web,) = [doc for doc in kubernetes("Deployment") if doc["metadata"]["name"] == "dealbot-web"]
    assert web["spec"]["replicas"] >= 2


# -- the image's contents -------------------------------------------------------------------------


def test_the_image_copies_every_package_and_installs_the_lock() -> None:
    instructions = dockerfile_instructions()
    copied = {
        rest.split()[0]
        for keyword, rest in instructions
        if keyword == "COPY" and not rest.startswith("--from")
    }
    packages = {name.split(".")[0] for name in project()["tool"]["setuptools"]["packages"]}
    assert packages <= copied, f"packages the image leaves out: {packages - copied}"
    assert {"requirements.lock", "pyproject.toml", "README.md", "LICENSE"} <= {
        word for rest in (r for k, r in instructions if k == "COPY") for word in rest.split()
    }
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any("pip install -r /src/requirements.lock" in run for run in runs)
    assert any("pip install --no-deps /src" in run and "pip check" in run for run in runs)
    ignored = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copied:
        path = source.removeprefix("/")
        assert (ROOT / path).exists(), source
        assert not any(fnmatch.fnmatch(path, pattern) for pattern in ignored), source
    assert ".env" in ignored and ".git" in ignored


def test_the_image_installs_a_font_the_charts_look_for() -> None:
    runs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
    installed = [package for package in FONT_PACKAGES if re.search(rf"\b{package}\b", runs)]
    assert installed, "the image installs a CJK font"
    # The charts take any installed font that draws the labels; the build proves matplotlib finds
    # one (below), so the package only has to be a CJK font.
    assert "font_for(" in runs, "the build checks that matplotlib finds it"
