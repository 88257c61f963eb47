"""LOG_FORMAT=json: one JSON object per line, with the ids of the console's log lines as fields."""
import json
import logging
import subprocess
import sys
from pathlib import Path

from config.logging import JsonFormatter

BASE_DIR = Path(__file__).resolve().parents[2]


def formatted(msg, *args, name="messaging", exc_info=None, **extra) -> dict:
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))


def test_it_lifts_the_named_values_of_a_log_line_into_fields():
    line = formatted(
        "message=%s attempt=%s task=%s instance=%s failed kind=%s http=%s: %s; retrying in %ss",
        42, 2, "t-1", "console", "timeout", None, "Evolution API did not answer", 0.2,
    )
    assert line["level"] == "WARNING" and line["logger"] == "messaging"
    assert line["msg"].startswith("message=42 attempt=2 task=t-1 instance=console failed kind=timeout")
    assert (line["message"], line["attempt"], line["task"], line["instance"], line["kind"], line["http"]) == (
        42, 2, "t-1", "console", "timeout", None
    )
    assert "ts" in line


def test_it_adds_extra_fields_and_never_overwrites_its_own_keys():
    line = formatted("message=%s accepted", 7, phone="+5511987654321", ts="not me", level="nor me")
    assert line["phone"] == "+5511987654321" and line["message"] == 7
    assert line["ts"] != "not me" and line["level"] == "WARNING"


def test_unnamed_placeholders_and_percent_signs_keep_the_names_in_step():
    line = formatted("%d%% done message=%s", 50, 7)
    assert line["msg"] == "50% done message=7" and line["message"] == 7


def test_a_line_with_named_placeholders_gets_no_positional_fields():
    record = logging.LogRecord("messaging", logging.INFO, __file__, 1, "message=%(id)s", ({"id": 9},), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "message=9" and "message" not in line


def test_it_keeps_the_traceback_in_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        line = formatted("message=%s failed", 3, exc_info=sys.exc_info())
    assert "ValueError: boom" in line["exc_info"] and line["message"] == 3


def test_gunicorn_access_lines_get_method_path_and_status():
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(m)s %(U)s %(s)s", (), None)
    record.args = {"m": "POST", "U": "/messages", "s": "202", "M": 12, "h": "127.0.0.1"}
    line = json.loads(JsonFormatter().format(record))
    assert (line["method"], line["path"], line["status"], line["duration_ms"]) == ("POST", "/messages", "202", 12)


def test_log_format_json_switches_the_console_handler_and_stops_celery_hijacking_it(tmp_path):
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps([s.LOGGING['handlers']['console']['formatter'], getattr(s, 'CELERY_WORKER_HIJACK_ROOT_LOGGER', True)]))"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "CONSOLE_VAR_DIR": str(tmp_path),
           "DJANGO_SECRET_KEY": "a-key-of-this-tests-own"}
    run = lambda extra: json.loads(  # noqa: E731
        subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env={**env, **extra}, capture_output=True,
                       text=True, timeout=60, check=True).stdout
    )
    assert run({"LOG_FORMAT": "json"}) == ["json", False]
    assert run({}) == ["plain", True]
