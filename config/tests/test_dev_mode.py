"""`make dev`, the embedded mode: it keeps its defaults whatever .env says, and keeps its state under var/."""
import json
import os
import shutil
import subprocess
import sys

from tests_support import ROOT

ENV_PROBE = f"probe: {sys.executable} -c 'import json, os; print(\"ENV=\" + json.dumps(dict(os.environ)))'\n"


def dotenv(path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def the_command_make_dev_starts_the_processes_with() -> str:
    dry_run = subprocess.run(["make", "-n", "dev"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return next(line for line in dry_run.stdout.splitlines() if "honcho start" in line)


def test_make_dev_does_not_hand_the_production_env_file_to_its_processes(tmp_path):
    # A checkout where .env was copied from .env.example for docker compose (ports 8001/8082, Evolution on
    # host.docker.internal, HTTPS redirects): `make dev` still runs the embedded console.
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    (tmp_path / "Procfile").write_text(ENV_PROBE)  # instead of the four processes: print what they would get
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    production = {key: value for key, value in dotenv(tmp_path / ".env").items() if value}
    env = {key: value for key, value in os.environ.items() if key not in production}

    started = subprocess.run(
        ["bash", "-c", the_command_make_dev_starts_the_processes_with()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )

    line = next(line for line in started.stdout.splitlines() if "ENV=" in line)
    processes_env = json.loads(line.split("ENV=", 1)[1])
    assert {key for key, value in production.items() if processes_env.get(key) == value} == set()
    assert processes_env["DJANGO_DEBUG"] == "true"


def test_make_devs_first_steps_run_on_a_fresh_machine_with_no_environment(tmp_path):
    # No key, no DEBUG, no database or broker: the embedded default. The settings refuse to start without a key
    # when DEBUG is off, so every step make dev runs before honcho must run as development.
    dry_run = subprocess.run(["make", "-n", "dev"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    steps = [line for line in dry_run.stdout.splitlines() if "manage.py" in line]
    assert any("migrate" in step for step in steps) and any("bootstrap_console" in step for step in steps)
    unset = {"DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env["CONSOLE_VAR_DIR"] = str(tmp_path / "var")

    for step in steps:
        done = subprocess.run(["bash", "-c", step], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{step}\n{done.stderr[-2000:]}"
    assert (tmp_path / "var" / "console.sqlite3").exists()


def test_the_embedded_broker_keeps_its_exchange_table_under_var(tmp_path):
    # kombu's filesystem transport writes its exchange table to "control" relative to the current directory
    # unless told otherwise: a `control/` folder, with the host name in it, appeared at the repository's root.
    var, cwd = tmp_path / "var", tmp_path / "elsewhere"
    cwd.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(CONSOLE_VAR_DIR=str(var), PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="config.settings")
    declare_the_queues = (
        "import django; django.setup()\n"
        "from config.celery import app\n"
        "with app.connection_for_write() as connection:\n"
        "    for queue in app.amqp.queues.values():\n"
        "        queue(connection.default_channel).declare()\n"
    )

    subprocess.run([sys.executable, "-c", declare_the_queues], cwd=cwd, env=env, check=True, timeout=60)

    assert list(cwd.iterdir()) == []
    assert sorted(path.name for path in (var / "broker" / "control").iterdir()) == [
        "bulk_messages.exchange", "maintenance.exchange", "transactional_messages.exchange",
    ]
