"""The deployment files say what the project can do: compose parses, its commands exist, settings pass check --deploy."""
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

BASE_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = BASE_DIR / "docker-compose.yml"
DOCKERFILE = BASE_DIR / "Dockerfile"
ENV_EXAMPLE = BASE_DIR / ".env.example"
SETTINGS_FILE = BASE_DIR / "config" / "settings.py"

# Variables the settings read that compose does not pass on purpose.
NOT_PASSED_BY_COMPOSE = {"CONSOLE_VAR_DIR", "DJANGO_STATIC_ROOT"}  # embedded mode only / fixed in the image
SERVICES = {"postgres", "redis", "migrate", "web", "worker", "beat", "flower", "sandbox"}


# --- reading the files -------------------------------------------------------------------------------------------


def compose_source() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate_defaults(text: str) -> str:
    """What compose makes of the file with no .env: ${NAME:-default} -> default, $$ -> $."""
    text = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)
    return text.replace("$$", "$")


def compose_with_defaults() -> dict:
    return yaml.safe_load(interpolate_defaults(COMPOSE_FILE.read_text()))


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else list(command)


def dockerfile_instruction(name: str) -> str:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().upper().startswith(name + " ")]
    assert lines, f"no {name} in the Dockerfile"
    return lines[-1][len(name) + 1:].strip()


def dockerfile_cmd() -> list[str]:
    return json.loads(dockerfile_instruction("CMD"))


def settings_variables() -> set[str]:
    source = SETTINGS_FILE.read_text()
    return set(re.findall(r'(?:environ\.get|env_bool|env_list)\(\s*"([A-Z0-9_]+)"', source))


def compose_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))


def env_example_variables() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def env_example_mentions() -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b", ENV_EXAMPLE.read_text()))


# --- .env.example and the compose environment ----------------------------------------------------------------


def test_every_variable_the_settings_read_is_documented_in_env_example():
    missing = settings_variables() - env_example_mentions()
    assert not missing, f"add to .env.example with a comment: {sorted(missing)}"


def test_every_variable_the_compose_file_reads_is_set_in_env_example():
    missing = compose_variables() - set(env_example_variables())
    assert not missing, f"add to .env.example with a comment: {sorted(missing)}"


def test_every_env_example_line_has_a_comment_above_it():
    lines = ENV_EXAMPLE.read_text().splitlines()
    uncommented = [
        line.split("=")[0]
        for i, line in enumerate(lines)
        if re.match(r"^[A-Z0-9_]+=", line) and not any(l.startswith("#") for l in lines[max(0, i - 3):i])
    ]
    assert not uncommented, uncommented


def test_the_compose_file_passes_every_setting_to_the_console_containers():
    environment = compose_source()["x-console-environment"]
    missing = settings_variables() - set(environment) - NOT_PASSED_BY_COMPOSE
    assert not missing, f"pass these in x-console-environment: {sorted(missing)}"


def test_compose_defaults_agree_with_the_settings_defaults():
    # A tunable whose default differs between compose and settings would behave differently in production.
    settings_defaults = dict(re.findall(r'environ\.get\(\s*"([A-Z0-9_]+)",\s*"([^"]*)"\)', SETTINGS_FILE.read_text()))
    compose_defaults = dict(re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", COMPOSE_FILE.read_text()))
    deliberate = {"EVOLUTION_API_URL", "LOG_FORMAT", "DJANGO_SECRET_KEY", "EVOLUTION_API_KEY"}
    differ = {
        name: (settings_defaults[name], compose_defaults[name])
        for name in settings_defaults.keys() & compose_defaults.keys() - deliberate
        if compose_defaults[name] not in ("", settings_defaults[name])
    }
    assert not differ, differ


# --- the compose file's shape ----------------------------------------------------------------------------------


def published_ports(service: dict) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_with_no_env_file_nothing_is_published_on_evolutions_port_and_databases_stay_private():
    services = compose_with_defaults()["services"]
    assert set(services) == SERVICES
    assert published_ports(services["web"]) == ["127.0.0.1:8001:8000"]
    assert published_ports(services["flower"]) == ["127.0.0.1:5556:5555"]
    assert not published_ports(services["postgres"]) and not published_ports(services["redis"])
    every_port = [port for service in services.values() for port in published_ports(service)]
    assert not [port for port in every_port if port.split(":")[-2] == "8080"]


def test_workers_can_be_scaled_and_beat_is_alone():
    services = compose_source()["services"]
    for name in ("worker", "beat"):
        assert "ports" not in services[name] and "container_name" not in services[name]
    assert "--pool ${CELERY_WORKER_POOL:-threads}" in services["worker"]["command"]
    assert "--concurrency ${CELERY_WORKER_CONCURRENCY:-16}" in services["worker"]["command"]
    assert "ONE beat" in COMPOSE_FILE.read_text()


def test_web_worker_and_beat_wait_for_migrations_and_healthy_services():
    services = compose_source()["services"]
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in ("postgres", "redis", "worker", "flower"):
        assert "test" in services[name]["healthcheck"]


def test_redis_keeps_an_append_only_file_on_a_volume_and_postgres_a_volume():
    services = compose_source()["services"]
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["redis"]["volumes"] == ["redis-data:/data"]
    assert services["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]


def services_started_by_up(env: dict[str, str]) -> set[str]:
    """What `docker compose up` starts with this .env: services without a profile, and those of COMPOSE_PROFILES."""
    profiles = {name.strip() for name in env.get("COMPOSE_PROFILES", "").split(",") if name.strip()}
    return {
        name for name, service in compose_source()["services"].items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


def test_a_first_up_with_the_example_env_starts_no_flower_without_its_login():
    # Flower exits without FLOWER_BASIC_AUTH, and restart: unless-stopped turned that into a restart loop.
    example = env_example_variables()
    started = services_started_by_up(example)

    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= started
    assert "flower" not in started or example["FLOWER_BASIC_AUTH"]
    assert "flower" in services_started_by_up({**example, "COMPOSE_PROFILES": "flower"})


def test_the_sandbox_runs_only_with_its_profile_and_binds_every_interface():
    sandbox = compose_source()["services"]["sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    assert command_of(sandbox)[-4:] == ["--host", "0.0.0.0", "--port", "8081"]


def test_console_containers_reach_an_evolution_on_the_host():
    for name in ("web", "worker", "beat"):
        assert "host.docker.internal:host-gateway" in compose_with_defaults()["services"][name]["extra_hosts"]


# --- docker-compose itself (Debian's docker-compose package; .ci/run installs it) ----------------------------


# What compose refuses to start without: no default for a secret.
REQUIRED = {"DJANGO_SECRET_KEY": "k3y-" + "x9Qz" * 16, "POSTGRES_PASSWORD": "s3cret"}


def docker_compose(tmp_path: Path, *args: str, env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; .ci/run does it)")
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    result = subprocess.run(
        ["docker-compose", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        # no variables from this shell
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), **(REQUIRED if env is None else env)},
    )
    assert (result.returncode == 0) == ok, result.stderr
    return result


def rendered_ports(service: dict) -> list[str]:
    """docker-compose 1.x renders "ip:published:target/tcp"; Compose v2 renders mappings. One shape for both."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append(f"{port.get('host_ip', '')}:{port['published']}:{port['target']}")
        else:
            ports.append(str(port).removesuffix("/tcp"))
    return ports


def test_without_an_env_file_compose_refuses_to_run_with_no_secret_key_or_database_password(tmp_path):
    refused = docker_compose(tmp_path, "config", env={}, ok=False)
    assert "DJANGO_SECRET_KEY" in refused.stderr or "POSTGRES_PASSWORD" in refused.stderr
    for name in REQUIRED:
        others = {key: value for key, value in REQUIRED.items() if key != name}
        assert name in docker_compose(tmp_path, "config", env=others, ok=False).stderr


def test_docker_compose_parses_the_file_without_an_env_file(tmp_path):
    # Only the two secrets compose has no default for, in the shell's environment.
    rendered = yaml.safe_load(docker_compose(tmp_path, "config").stdout)

    assert set(rendered["services"]) == SERVICES
    web = rendered["services"]["web"]
    assert rendered_ports(web) == ["127.0.0.1:8001:8000"]
    assert rendered_ports(rendered["services"]["flower"]) == ["127.0.0.1:5556:5555"]
    assert web["environment"]["DJANGO_DEBUG"] == "false"


def test_docker_compose_parses_the_file_with_the_example_env_file(tmp_path):
    env = ENV_EXAMPLE.read_text().replace("WEB_PORT=8001", "WEB_PORT=9101")
    (tmp_path / ".env").write_text(env)

    rendered = yaml.safe_load(docker_compose(tmp_path, "config", env={}).stdout)

    web = rendered["services"]["web"]
    assert rendered_ports(web) == ["127.0.0.1:9101:8000"]
    assert web["environment"]["DJANGO_SECURE_SSL_REDIRECT"] == "true"
    assert web["environment"]["DJANGO_SECRET_KEY"] == "change-me"


def test_docker_compose_knows_the_sandbox_profile(tmp_path):
    services = docker_compose(tmp_path, "--profile", "sandbox", "config", "--services").stdout.split()
    assert "sandbox" in services and "web" in services


# --- every command the image and compose run exists in the project -------------------------------------------


def all_commands() -> list[list[str]]:
    services = compose_with_defaults()["services"]
    commands = [dockerfile_cmd(), json.loads(dockerfile_instruction("HEALTHCHECK").split("CMD", 1)[1])]
    for service in services.values():
        if "command" in service:
            command = command_of(service)
            if command[:2] == ["sh", "-c"]:
                commands += [part.split() for part in re.split(r"&&|;", command[2]) if "exec " in part or "manage.py" in part]
            else:
                commands.append(command)
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] in ("CMD", "CMD-SHELL"):
            commands.append(test[1:] if test[0] == "CMD" else test[1].split(">")[0].split())
    return [[word for word in command if word != "exec"] for command in commands]


def test_every_manage_py_command_in_the_deployment_exists():
    known = set(get_commands())
    used = {cmd[cmd.index("manage.py") + 1] for cmd in all_commands() if "manage.py" in cmd}
    assert used >= {"migrate", "check", "evolution_sandbox"}
    assert used <= known, used - known
    assert "collectstatic" in known and "collectstatic" in DOCKERFILE.read_text()


def test_every_celery_command_names_the_app_its_subcommand_and_real_queues():
    from celery.bin.celery import celery as celery_cli

    from config.celery import app

    subcommands = set(celery_cli.commands) | {e.name for e in entry_points(group="celery.commands")}
    queues = {queue.name for queue in app.conf.task_queues}
    celery_commands = [cmd for cmd in all_commands() if cmd and cmd[0] == "celery"]
    assert {cmd[3] for cmd in celery_commands} >= {"worker", "beat", "flower", "inspect"}
    for cmd in celery_commands:
        assert cmd[1:3] == ["-A", "config"], cmd
        assert cmd[3] in subcommands, cmd
        if "-Q" in cmd:
            assert set(cmd[cmd.index("-Q") + 1].split(",")) == queues


def test_the_image_runs_gunicorn_on_the_wsgi_app_with_its_config_module():
    import importlib

    cmd = dockerfile_cmd()
    assert cmd[0] == "gunicorn"
    module, _, attribute = cmd[1].partition(":")
    assert hasattr(importlib.import_module(module), attribute or "application")
    config = importlib.import_module(cmd[cmd.index("--config") + 1].removeprefix("python:"))
    assert config.bind == "0.0.0.0:8000" and config.workers >= 1
    assert "EXPOSE 8000" in DOCKERFILE.read_text()


def test_every_script_the_image_runs_is_in_the_project():
    scripts = {word for cmd in all_commands() for word in cmd if word.startswith("/app/")}
    assert scripts, "expected the healthcheck script"
    for script in scripts:
        assert (BASE_DIR / script.removeprefix("/app/")).is_file(), script


def test_the_image_is_multi_stage_slim_and_runs_as_a_user():
    text = DOCKERFILE.read_text()
    assert text.count("FROM python:3.11-slim") == 2
    assert "requirements.txt" in text and re.search(r"^USER console$", text, re.M)
    for pattern in (".venv", ".env", ".git", "var/", "staticfiles/"):
        assert pattern in (BASE_DIR / ".dockerignore").read_text().split()


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the repository) out of the build context."""
    patterns = [line.strip() for line in (BASE_DIR / ".dockerignore").read_text().splitlines()]
    ignored = False
    for pattern in (p for p in patterns if p and not p.startswith("#")):
        negated, pattern = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
        candidates = [path] + [str(parent) for parent in Path(path).parents if str(parent) != "."]
        if any(fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, pattern.removeprefix("**/"))
               or fnmatch.fnmatch(candidate, f"*/{pattern.removeprefix('**/')}") for candidate in candidates):
            ignored = not negated
    return ignored


def test_the_image_holds_the_console_and_not_its_tests_benchmarks_screenshots_or_dev_tools():
    for kept_out in (".venv/bin/python", "bench/harness.py", "docs/admin-dashboard.png", "messaging/tests/test_api.py",
                     "evolution/tests/conftest.py", "config/tests/test_deploy.py", "conftest.py", "tests_support.py"):
        assert dockerignored(kept_out), kept_out
    # ...while everything the image and compose run is still in it.
    runtime = ["manage.py", "requirements.txt", "config/settings.py", "config/gunicorn.py", "evolution/sandbox/server.py"]
    runtime += [word.removeprefix("/app/") for cmd in all_commands() for word in cmd if word.startswith("/app/")]
    for kept_in in runtime:
        assert (BASE_DIR / kept_in).is_file() and not dockerignored(kept_in), kept_in


def test_dev_tools_are_not_installed_in_the_image():
    runtime = (BASE_DIR / "requirements.txt").read_text().lower()
    assert "honcho" not in runtime and "honcho" in (BASE_DIR / "requirements-dev.txt").read_text().lower()
    assert "honcho" not in DOCKERFILE.read_text() + COMPOSE_FILE.read_text()


# --- check --deploy ---------------------------------------------------------------------------------------------


def manage(*args, env: dict) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env={**base, **env}, capture_output=True, text=True,
        timeout=120,
    )


def production_env(tmp_path) -> dict:
    env = {k: v for k, v in env_example_variables().items() if v != ""}
    env["DJANGO_SECRET_KEY"] = "k3y-" + "x9Qz" * 16  # what an operator generates
    env["DATABASE_URL"] = "postgres://console:secret@127.0.0.1:5432/console"  # check --deploy does not connect
    env["CONSOLE_VAR_DIR"] = str(tmp_path)
    return env


def test_the_documented_production_settings_pass_check_deploy_with_no_warnings(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_with_preload_too_nothing_needs_silencing(tmp_path):
    env = {**production_env(tmp_path), "DJANGO_SECURE_HSTS_PRELOAD": "true", "DJANGO_SILENCED_SYSTEM_CHECKS": ""}

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_the_migrate_step_refuses_the_example_secret_key(tmp_path):
    env = {**production_env(tmp_path), "DJANGO_SECRET_KEY": env_example_variables()["DJANGO_SECRET_KEY"]}

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0 and "security.W009" in result.stderr


def test_the_development_defaults_are_flagged_by_check_deploy(tmp_path):
    # With DEBUG off they do not even start (test_hardening); `make dev` turns DEBUG on.
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={"CONSOLE_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "true"})

    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert check in result.stderr, check


def test_the_migrate_service_runs_check_deploy_before_migrating():
    command = command_of(compose_source()["services"]["migrate"])
    assert "check --deploy --fail-level WARNING && python manage.py migrate" in command[-1]


# --- container hardening (issue 10) ------------------------------------------------------------------------------

CONSOLE_SERVICES = {"migrate", "web", "worker", "beat", "flower", "sandbox"}


def test_console_containers_run_read_only_without_capabilities_or_privilege_escalation_and_with_a_memory_limit(tmp_path):
    rendered = yaml.safe_load(docker_compose(tmp_path, "--profile", "flower", "--profile", "sandbox", "config").stdout)
    services = rendered["services"]
    for name in CONSOLE_SERVICES:
        service = services[name]
        assert service["read_only"] is True, name
        assert any(str(mount).startswith("/tmp") for mount in service["tmpfs"]), name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    for name in SERVICES:  # PostgreSQL and Redis too, where their entrypoints allow it
        assert services[name].get("mem_limit"), name
        assert "no-new-privileges:true" in services[name]["security_opt"], name


def test_flower_and_the_sandbox_get_neither_the_secret_key_nor_the_database_url(tmp_path):
    rendered = yaml.safe_load(docker_compose(tmp_path, "--profile", "flower", "--profile", "sandbox", "config").stdout)
    for name in ("flower", "sandbox"):
        environment = rendered["services"][name]["environment"]
        assert "DATABASE_URL" not in environment and "POSTGRES_PASSWORD" not in str(environment), name
        assert environment["DJANGO_SECRET_KEY"] != REQUIRED["DJANGO_SECRET_KEY"], name
        assert "env_file" not in rendered["services"][name], name
    assert rendered["services"]["web"]["environment"]["DJANGO_SECRET_KEY"] == REQUIRED["DJANGO_SECRET_KEY"]
