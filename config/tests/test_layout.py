"""The layout the README promises, checked on the code itself, so it cannot drift silently."""
import ast

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
