"""docker-compose.yml and the Dockerfiles it builds: everything they name exists and is understood.

No Docker engine runs in CI, so the stack is not started here. What can rot
without one is checked instead: build contexts, Dockerfiles and the files they
COPY, mounted config files (loaded with the real config loader), every
``STACKYARD_*`` variable (a field of :class:`server.settings.Settings`), every
``stackyard`` command line (parsed by the real CLI parser), health checks and
``depends_on`` names.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.config.load import load_config
from server.settings import Settings
from stackyard.cli import build_parser
from tests.support.tools import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict) and services
    return services


def _build(service: dict[str, Any]) -> tuple[Path, Path] | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return ROOT / build, ROOT / build / "Dockerfile"
    context, dockerfile = build["context"], build.get("dockerfile", "Dockerfile")
    return ROOT / context, ROOT / context / dockerfile


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _env_names(service: dict[str, Any]) -> list[str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return [item.split("=", 1)[0] for item in env]
    return list(env)


def _host_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    mounts = []
    for volume in service.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if source.startswith((".", "/")):
            mounts.append((ROOT / source, rest.split(":", 1)[0]))
    return mounts


def test_the_stack_has_the_four_services() -> None:
    assert {"postgres", "stackyard", "collector", "demo"} <= set(_services())
    assert _stackyard_images() == ["collector", "stackyard"]


@pytest.mark.parametrize("name", sorted(_services()))
def test_every_service_has_a_health_check_and_known_dependencies(name: str) -> None:
    service = _services()[name]
    check = service.get("healthcheck")
    assert check and check.get("test"), f"{name} has no health check"
    for dependency, condition in (service.get("depends_on") or {}).items():
        assert dependency in _services(), f"{name} depends on unknown service {dependency}"
        assert condition == {"condition": "service_healthy"}, f"{name} should wait for {dependency} to be healthy"
        assert _services()[dependency].get("healthcheck"), f"{dependency} is waited for but has no health check"


@pytest.mark.parametrize("name", sorted(n for n, s in _services().items() if "build" in s))
def test_build_context_dockerfile_and_copied_files_exist(name: str) -> None:
    found = _build(_services()[name])
    assert found is not None
    context, dockerfile = found
    assert context.is_dir(), f"{name}: build context {context} does not exist"
    assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
    for instruction, arguments in _dockerfile_instructions(dockerfile):
        if instruction in ("COPY", "ADD") and "--from=" not in arguments:
            *sources, _ = shlex.split(arguments)
            for source in sources:
                assert (context / source).exists(), f"{dockerfile}: COPY {source}: no such file in {context}"


def test_the_image_copies_every_python_package_the_wheel_needs() -> None:
    """A package missing from the build stage builds a wheel without it, and the console script fails at start."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(p.rstrip("*") for p in patterns)
    copied = {
        shlex.split(arguments)[0].strip("./")
        for instruction, arguments in _dockerfile_instructions(ROOT / "Dockerfile")
        if instruction == "COPY" and "--from=" not in arguments
    }
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file()
        assert package in copied, f"Dockerfile does not COPY the {package} package"


def _stackyard_settings_named() -> list[tuple[str, str]]:
    named = [(f"compose:{n}", env) for n, s in _services().items() for env in _env_names(s)]
    for _, dockerfile in filter(None, (_build(s) for s in _services().values())):
        for instruction, arguments in _dockerfile_instructions(dockerfile):
            if instruction == "ENV":
                named += [(str(dockerfile.relative_to(ROOT)), pair.split("=", 1)[0]) for pair in shlex.split(arguments)]
    return [(where, name) for where, name in named if name.startswith("STACKYARD_")]


def test_some_settings_are_named() -> None:
    assert any(name == "STACKYARD_DATABASE_URL" for _, name in _stackyard_settings_named())


@pytest.mark.parametrize(("where", "name"), _stackyard_settings_named())
def test_every_stackyard_setting_exists(where: str, name: str) -> None:
    field = name.removeprefix("STACKYARD_").lower()
    assert field in Settings.model_fields, f"{where}: {name} is not a setting (server/settings.py)"


def test_settings_values_are_valid() -> None:
    """The values given validate as Settings would read them from the environment."""
    env = _services()["stackyard"]["environment"]
    values = {k.removeprefix("STACKYARD_").lower(): str(v) for k, v in env.items()}
    settings = Settings(**values)  # type: ignore[arg-type]
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.host == "0.0.0.0"
    check = " ".join(_services()["stackyard"]["healthcheck"]["test"])
    assert f":{settings.port}/readyz" in check


def _stackyard_images() -> list[str]:
    """Services built from the repository's own Dockerfile: they run the stackyard command."""
    own = (ROOT / ".", ROOT / "." / "Dockerfile")
    return sorted(name for name, service in _services().items() if _build(service) == own)


@pytest.mark.parametrize("name", _stackyard_images())
def test_stackyard_command_lines_parse(name: str) -> None:
    service = _services()[name]
    command = service.get("command")
    assert isinstance(command, list) and command[0] == "stackyard", f"{name}: command should run stackyard"
    try:
        args = build_parser().parse_args(command[1:])
    except SystemExit as exc:
        raise AssertionError(f"{name}: stackyard rejects {command!r}") from exc
    config = getattr(args, "config", None)
    if config is not None:
        mounts = {target: source for source, target in _host_mounts(service)}
        assert str(config) in mounts, f"{name}: --config {config} is not mounted from the repository"
        loaded = load_config(mounts[str(config)])
        assert loaded.targets, f"{name}: {mounts[str(config)]} lists no targets"
    if args.command == "collect":
        push_host = re.match(r"https?://([^:/]+)", args.push_url)
        assert push_host and push_host.group(1) in _services(), f"{name}: --push-url names no service"
        assert push_host.group(1) in service.get("depends_on", {})
        for target in load_config(mounts[str(config)]).targets:
            host = re.match(r"https?://([^:/]+)", target.url)
            assert host and host.group(1) in _services(), f"{target.url} is not a compose service"


def test_host_mounts_exist() -> None:
    for name, service in _services().items():
        for source, _ in _host_mounts(service):
            assert source.exists(), f"{name}: mounted {source} does not exist"
