"""JSON log lines for production (LOG_FORMAT=json): one object per event, ids as fields.

The console logs facts as ``log.info("message=%s attempt=%s task=%s ...", ...)``. This formatter keeps that
rendered text as ``msg`` and also lifts every ``name=%s`` pair of the template into a field of its own, so a log
search can filter on ``message`` or ``task`` without parsing text. Fields passed with ``extra=`` and the id of the
Celery task being run (when there is one) are added as well.
"""
import json
import logging
import re
from datetime import datetime, timezone

# Every placeholder of a %-template, in order, with the name written just before it ("message=%s") if any.
_PLACEHOLDER = re.compile(r"(?:(\w+)=)?%[-#0 +]*\d*(?:\.\d+)?([sdrifgeExXc%])")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# Never overwrite the envelope's own keys with a field of the same name.
_RESERVED = {"ts", "level", "logger", "msg", "exc_info", "stack_info"}
# gunicorn's access log passes its atoms as a dict; these are the ones worth a field.
_ACCESS_ATOMS = {"h": "remote_addr", "m": "method", "U": "path", "s": "status", "M": "duration_ms", "a": "user_agent"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in self._fields(record).items():
            if name not in _RESERVED:
                entry.setdefault(name, value)
        task = _current_task()
        if task is not None:
            entry.setdefault("task_id", task.request.id)
            entry.setdefault("task_name", task.name)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)

    def _fields(self, record: logging.LogRecord) -> dict:
        fields = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        args = record.args
        if isinstance(args, dict):
            if record.name == "gunicorn.access":
                fields.update({field: args.get(atom) for atom, field in _ACCESS_ATOMS.items() if atom in args})
            return fields
        if isinstance(record.msg, str) and isinstance(args, tuple) and args:
            names = [name for name, kind in _PLACEHOLDER.findall(record.msg) if kind != "%"]
            # The n-th placeholder takes the n-th arg; if they do not line up, lift nothing rather than mislabel.
            if len(names) == len(args):
                fields.update((name, _plain(arg)) for name, arg in zip(names, args) if name)
        return fields


def _plain(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _current_task():
    from celery._state import get_current_task

    task = get_current_task()
    return task if task is not None and task.request.id else None
