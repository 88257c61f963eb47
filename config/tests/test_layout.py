"""The layout the README promises, checked on the code itself, so it cannot drift silently."""
import ast
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from django.apps import apps as django_apps

from tests_support import ROOT

SKIPPED_FOLDERS = {".venv", "tests", "migrations", "bench"}


def source_files():
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT)
        if not SKIPPED_FOLDERS & set(relative.parts):
            yield relative, ast.parse(path.read_text())


def names_in_chain(node) -> set[str]:
    """The names a chain of calls starts from: {"OutboundMessage"} for OutboundMessage.objects.filter(...)."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return {node.id} if isinstance(node, ast.Name) else set()


def test_every_state_change_of_a_message_or_an_attempt_is_a_queryset_method():
    inline = [
        f"{path}:{node.lineno}"
        for path, tree in source_files() if path.name != "models.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
        and names_in_chain(node.func.value) & {"OutboundMessage", "SendAttempt"}
    ]
    assert inline == [], "conditional UPDATEs belong on messaging/models.py's querysets"


def test_idempotency_keys_are_made_in_messaging_idempotency_only():
    made_elsewhere = [
        f"{path}:{node.lineno}"
        for path, tree in source_files() if path.as_posix() != "messaging/idempotency.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")) in ("Key", "MessageKey")
    ]
    assert made_elsewhere == [], "give the key a named constructor in messaging/idempotency.py"


def test_an_instances_state_is_asked_through_evolution_instances_only():
    asked_elsewhere = [
        f"{path}:{node.lineno}"
        for path, tree in source_files() if path.parts[0] != "evolution"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "connection_state"
    ]
    assert asked_elsewhere == [], "Evolution owns its instances: call evolution.instances.instance_state"


def test_the_readme_says_where_every_part_of_the_tree_is():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [PurePosixPath(line) for line in tracked.stdout.splitlines()]
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Where things are", 1)[1].split("```")[1]
    blocks: dict[str, str] = {}  # "messaging/" -> its lines, for each entry at the left margin
    for line in filter(None, section.splitlines()):
        if not line[0].isspace():
            current = line.split()[0].rstrip(",")
        blocks[current] = blocks.get(current, "") + line + "\n"
    top = {path.parts[0] + ("/" if len(path.parts) > 1 else "") for path in paths}
    missing = [entry for entry in sorted(top) if (entry.endswith("/") or entry.endswith(".py")) and entry not in section]
    # Inside each app of the project (and config/), every module and folder is named in the app's own lines.
    apps = {Path(config.path).name for config in django_apps.get_app_configs() if Path(config.path).parent == ROOT}
    for app in sorted(apps | {"config"}):
        children = {path.parts[1].removesuffix(".py") for path in paths if path.parts[0] == app and len(path.parts) > 2
                    or path.parts[0] == app and path.suffix == ".py"}
        for child in sorted(children - {"__init__", "apps", "tests", "migrations"}):
            if not re.search(rf"\b{child}\b", blocks.get(f"{app}/", "")):
                missing.append(f"{app}/{child}")
    assert missing == [], "add them to README.md's 'Where things are'"
