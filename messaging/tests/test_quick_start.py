"""The README's quick start ("Try it: one message per sandbox behaviour"), run as written: each request it shows is
made through the API to the sandbox with a real worker, and each answer it shows is the one the console gives. The
README cannot go stale silently."""
import json
import re

import httpx
import pytest

from messaging.models import OutboundMessage
from tests_support import ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def quick_start_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    try_it = readme.split("### Try it", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```[a-z]*\n(.*?)```", try_it, flags=re.S)


def json_lines(block: str) -> list:
    return [json.loads(line) for line in block.splitlines() if line.strip()]


def test_the_quick_start_requests_give_the_answers_the_readme_shows(api, celery_worker, evolution_sandbox, settings):
    settings.EVOLUTION_TIMEOUT_SECONDS = 0.5  # the test sandbox holds ...0408 answers 3 s (the dev one: past 15 s)
    post, accepted, get, outcomes, sandbox, copies, tasks, task_states = quick_start_blocks()[:8]
    phones = re.findall(r'"(\+[^"]+)"', post.split(";")[0])
    text = re.search(r'\\"message\\": \\"([^\\]+)\\"', post).group(1)
    assert len(phones) == 5 and "/messages" in post and "/messages/$id" in get and "/_sandbox/messages" in sandbox

    ids = {}  # the README's id (1, 2...) -> this run's
    for phone, shown in zip(phones, json_lines(accepted), strict=True):
        answer = api.post("/messages", {"phone": phone, "message": text}, format="json")
        assert answer.status_code == 202, answer.content
        body = answer.json()
        ids[shown["id"]] = body["id"]
        assert {"id": shown["id"], "status": body["status"], "phone": body["phone"]} == shown

    wait_for(lambda: all(message.is_final for message in OutboundMessage.objects.filter(pk__in=ids.values())),
             timeout=60, what="every quick-start message final")
    *finals, attempts = json_lines(outcomes)
    for shown in finals:
        body = api.get(f"/messages/{ids[shown['id']]}").json()
        assert {key: body[key] for key in shown} | {"id": shown["id"]} == shown
    timed_out = api.get(f"/messages/{ids[5]}").json()
    assert [{key: attempt[key] for key in ("number", "outcome", "error_kind", "reconciled")}
            for attempt in timed_out["attempts"]] == attempts

    (shown_copies,) = json_lines(copies)
    assert sorted(sent["number"].lstrip("+") for sent in httpx.get(f"{evolution_sandbox.url}/_sandbox/messages").json()) \
        == sorted(shown_copies)

    for shown in json_lines(task_states):
        readme_id = shown["result"]["message_id"]
        task_id = api.get(f"/messages/{ids[readme_id]}").json()["task_id"]
        body = api.get(f"/tasks/{task_id}").json()
        assert body["state"] == shown["state"]
        assert body["result"] | {"message_id": readme_id} == shown["result"]
    assert re.findall(r"for id in ([\d ]+);", tasks) == ["1 4"]
