"""What can be checked of the Docker deployment without a Docker engine.

The compose file must parse, every command it runs must be a real `fvlab` verb with real options
or the gunicorn entry point, gunicorn must sit behind the buffering reverse proxy (published
itself nowhere, trusting exactly that one proxy's forwarded headers), and the image must install
the packages pyproject.toml declares.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from service.cli import fvlab

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _resolve_fvlab(args: list[str]) -> None:
    """Parse `args` with the real click group; raises when a verb or option does not exist."""
    command: click.Command = fvlab
    ctx = click.Context(fvlab, info_name="fvlab")
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest.pop(0))
        assert sub is not None, f"fvlab has no verb in {args}"
        command = sub
    command.make_context(command.name or "fvlab", rest, parent=ctx)


def test_services_and_their_duties(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "web", "worker", "proxy"}
    postgres = services["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["env_file"] == ".env"
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices and "gpu" in devices[0]["capabilities"]
    assert "ports" not in services["worker"], "workers scale with --scale; no fixed ports"


def test_gunicorn_faces_only_the_buffering_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    web, proxy = services["web"], services["proxy"]
    assert "ports" not in web, "gunicorn must not be published; the proxy is"
    assert web["expose"] == ["8000"]
    assert web["environment"]["FVLAB_PROXY_HOPS"] == "1"
    assert "FVLAB_DATABASE_URL" in web["environment"]  # the shared settings are kept too
    assert not any("forwarded-allow-ips" in part for part in _command(web)), (
        "forwarded headers are trusted by the site's FVLAB_PROXY_HOPS alone")
    for name in ("migrate", "worker"):
        assert "FVLAB_PROXY_HOPS" not in services[name]["environment"]
    assert proxy["image"].startswith("caddy:")
    assert [port.rsplit(":", 1)[1] for port in proxy["ports"]] == ["80", "443"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert {volume.split(":")[1] for volume in proxy["volumes"]} == {"/data", "/config"}
    [config] = proxy["configs"]
    assert config["target"] == "/etc/caddy/Caddyfile"
    caddyfile = compose["configs"][config["source"]]["content"]
    assert "reverse_proxy web:8000" in caddyfile
    assert re.search(r"^\s*request_buffers \d+[KM]B$", caddyfile, flags=re.M), (
        "the proxy must read each request body whole before gunicorn sees it")
    assert re.search(r"^\s*read_header \d+s$", caddyfile, flags=re.M)
    assert re.search(r"^\s*read_body \d+s$", caddyfile, flags=re.M)
    assert re.search(r"^\$\{FVLAB_SITE_ADDRESS:-:80\} \{$", caddyfile, flags=re.M), (
        "the site address (a domain for automatic TLS) comes from .env")


def test_every_fvlab_command_is_a_real_verb(compose: dict[str, Any]) -> None:
    seen = 0
    for service in compose["services"].values():
        if "command" in service and _command(service)[0] == "fvlab":
            _resolve_fvlab(_command(service)[1:])
            seen += 1
    assert seen == 2  # migrate and worker


def test_gunicorn_entry_point_builds_the_app(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gunicorn.config import Config
    from gunicorn.util import import_app

    command = _command(compose["services"]["web"])
    assert command[0] == "gunicorn"
    parsed = Config().parser().parse_args(command[1:])  # exits on an unknown gunicorn option
    assert parsed.config == "python:annotate.gunicorn_conf" and len(parsed.args) == 1
    settings = Config()
    for name, value in vars(importlib.import_module("annotate.gunicorn_conf")).items():
        if name in settings.settings:  # what gunicorn reads of the file
            settings.set(name, value)
    assert settings.workers >= 2 and settings.threads >= 2
    assert settings.worker_connections * settings.workers >= 200  # a crowd's burst fits
    assert settings.worker_connections < 1000  # below gunicorn's default: spread, not piled
    monkeypatch.setenv("FVLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'g.db'}")
    monkeypatch.setenv("FVLAB_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("FVLAB_PROXY_HOPS", compose["services"]["web"]["environment"][
        "FVLAB_PROXY_HOPS"])
    app = import_app(parsed.args[0])
    assert "healthz" in {rule.endpoint.split(".")[-1] for rule in app.url_map.iter_rules()}
    assert app.config["PROXY_HOPS"] == 1
    seen = app.test_client().get("/healthz", headers={"X-Forwarded-For": "198.51.100.7",
                                                      "X-Forwarded-Proto": "https"})
    assert seen.headers["Strict-Transport-Security"]  # the proxy's word on TLS is taken


def test_image_installs_what_pyproject_declares() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = set(re.findall(r"^COPY\s+(\S+)\s", dockerfile, flags=re.M))
    for package in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied, f"Dockerfile does not copy {package}"
    assert "pyproject.toml" in dockerfile.split("COPY", 2)[1]
    assert re.search(r"^RUN pip install \.$", dockerfile, flags=re.M)
    python = re.search(r"^FROM python:(\d+)\.(\d+)", dockerfile, flags=re.M)
    assert python is not None
    minimum = tuple(int(x) for x in pyproject["project"]["requires-python"][2:].split("."))
    assert (int(python[1]), int(python[2])) >= minimum


def test_env_example_defines_every_required_variable() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required <= set(example)
    assert "FVLAB_SECRET_KEY" in example

