"""The sandbox answers like Evolution API, checked over real HTTP with the real EvolutionClient."""
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from evolution.client import EvolutionClient, PermanentError, SentMessage, TemporaryError
from tests_support import free_port, start_sandbox_in_thread, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(sandbox):
    client = EvolutionClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=5.0, connect_timeout=1.0)
    yield client
    client.close()


@pytest.fixture
def raw(sandbox):
    """Plain HTTP to the sandbox, for shapes the client does not expose."""
    with httpx.Client(base_url=sandbox.url, headers={"apikey": sandbox.api_key}, timeout=5.0) as http:
        yield http


def send(raw, sandbox, body, *, headers=None, instance=None) -> httpx.Response:
    return raw.post(f"/message/sendText/{instance or sandbox.instance}", json=body, headers=headers)


# --- sendText --------------------------------------------------------------------------------------------------


def test_it_answers_a_send_with_201_and_evolutions_message_shape(sandbox, raw):
    before = int(time.time())

    response = send(raw, sandbox, {"number": "+55 (11) 98888-1234", "text": "olá"})

    assert response.status_code == 201
    body = response.json()
    assert body["key"]["remoteJid"] == "5511988881234@s.whatsapp.net"
    assert body["key"]["fromMe"] is True
    assert re.fullmatch(r"3EB0[0-9A-F]{16}", body["key"]["id"])
    assert (body["status"], body["pushName"], body["source"]) == ("PENDING", "Você", "web")
    assert body["message"] == {"conversation": "olá"}
    assert body["messageType"] == "conversation"
    assert before <= body["messageTimestamp"] <= int(time.time())
    assert body["instanceId"] and body["contextInfo"] == {}


def test_the_client_returns_the_sent_message(sandbox, client):
    sent = client.send_text(instance=sandbox.instance, number="+5511977771234", text="hi")

    assert isinstance(sent, SentMessage)
    assert (sent.remote_jid, sent.status) == ("5511977771234@s.whatsapp.net", "PENDING")
    assert [m["key"]["id"] for m in sandbox.sent_messages()] == [sent.message_id]


def test_it_rejects_a_missing_apikey_with_401(sandbox):
    response = httpx.post(f"{sandbox.url}/message/sendText/{sandbox.instance}", json={"number": "5511", "text": "x"})

    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}}


def test_it_rejects_a_wrong_apikey_and_the_client_calls_it_permanent(sandbox):
    with EvolutionClient(base_url=sandbox.url, api_key="wrong") as client:
        with pytest.raises(PermanentError) as caught:
            client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")

    assert (caught.value.kind, caught.value.status_code) == ("unauthorized", 401)
    assert sandbox.sent_messages() == []


def test_it_answers_404_for_an_unknown_instance_even_without_a_key(sandbox):
    response = httpx.post(f"{sandbox.url}/message/sendText/nope", json={})

    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "error": "Not Found",
        "response": {"message": ['The "nope" instance does not exist']},
    }


def test_it_rejects_a_body_without_text_with_a_nested_validation_array(sandbox, raw, client):
    response = send(raw, sandbox, {"number": "5511977771234"})

    assert response.status_code == 400
    assert response.json()["response"]["message"] == [['instance requires property "text"']]
    with pytest.raises(PermanentError) as caught:
        client.send_text(instance=sandbox.instance, number="5511977771234", text=None)
    assert caught.value.kind == "validation"


def test_it_rejects_a_number_that_is_not_a_string_as_invalid_format(sandbox, raw):
    response = send(raw, sandbox, {"number": 5511977771234, "text": "hi"})

    assert response.status_code == 400
    assert response.json()["response"]["message"] == [["Invalid format"]]


def test_it_rejects_blank_text_as_text_is_required(sandbox, raw, client):
    response = send(raw, sandbox, {"number": "5511977771234", "text": "   "})

    assert response.status_code == 400
    assert response.json()["response"]["message"] == ["Text is required"]
    with pytest.raises(PermanentError) as caught:
        client.send_text(instance=sandbox.instance, number="5511977771234", text="")
    assert (caught.value.kind, caught.value.detail) == ("validation", "Text is required")


def test_it_answers_unknown_routes_like_express(sandbox, raw):
    response = raw.post("/message/sendSomething/console")

    assert response.status_code == 404
    assert response.json()["response"]["message"] == ["Cannot POST /message/sendSomething/console"]


# --- scripted failures -----------------------------------------------------------------------------------------


def test_numbers_ending_0000_are_not_on_whatsapp(sandbox, raw, client):
    body = send(raw, sandbox, {"number": "5511977770000", "text": "hi"}).json()

    assert body["response"]["message"] == [
        {"jid": "5511977770000@s.whatsapp.net", "exists": False, "number": "5511977770000"}
    ]
    with pytest.raises(PermanentError) as caught:
        client.send_text(instance=sandbox.instance, number="+5511977770000", text="hi")
    assert caught.value.kind == "not_on_whatsapp"
    assert "5511977770000" in caught.value.detail


def test_numbers_ending_0500_always_fail_with_a_temporary_500(sandbox, client):
    for _ in range(3):
        with pytest.raises(TemporaryError) as caught:
            client.send_text(instance=sandbox.instance, number="5511977770500", text="hi")
        error = caught.value
        assert (error.kind, error.status_code, error.detail, error.maybe_sent) == (
            "server_error", 500, "Connection Closed", False,
        )
    assert sandbox.sent_messages() == []


def test_numbers_ending_0502_fail_twice_then_send(sandbox, client):
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(client.send_text(instance=sandbox.instance, number="5511977770502", text="hi").status)
        except TemporaryError as error:
            outcomes.append(error.kind)

    assert outcomes == ["server_error", "server_error", "PENDING"]
    assert len(sandbox.sent_messages()) == 1


def test_the_0502_counter_is_kept_per_number_and_cleared_by_reset(sandbox, client):
    def outcome(number: str) -> str:
        try:
            return client.send_text(instance=sandbox.instance, number=number, text="hi").status
        except TemporaryError as error:
            return error.kind

    # The first number uses up both of its failures: its next send would go out...
    assert [outcome("5511977770502"), outcome("5511977770502")] == ["server_error", "server_error"]
    # ...while another number still has its own two to come.
    assert outcome("5511988880502") == "server_error"
    sandbox.reset()

    # After reset the first number fails twice again before it sends.
    assert [outcome("5511977770502") for _ in range(3)] == ["server_error", "server_error", "PENDING"]


def test_numbers_ending_0400_get_the_ambiguous_400_and_nothing_is_recorded(sandbox, raw, client):
    assert send(raw, sandbox, {"number": "5511977770400", "text": "hi"}).json()["response"]["message"] == [
        "Error: Connection Closed"
    ]
    with pytest.raises(TemporaryError) as caught:
        client.send_text(instance=sandbox.instance, number="5511977770400", text="hi")

    assert (caught.value.kind, caught.value.maybe_sent) == ("send_error", True)
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert client.find_sent_message(
        instance=sandbox.instance, number="5511977770400", text="hi", since=since, until=since + timedelta(minutes=2)
    ) is None


def test_numbers_ending_0408_time_out_but_find_sent_message_finds_them(sandbox):
    since = datetime.now(timezone.utc)
    with EvolutionClient(base_url=sandbox.url, api_key=sandbox.api_key, timeout=0.5, connect_timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(TemporaryError) as caught:
            client.send_text(instance=sandbox.instance, number="+5511977770408", text="did it go?")
        assert time.monotonic() - started < 3

        assert (caught.value.kind, caught.value.maybe_sent) == ("timeout", True)
        found = client.find_sent_message(
            instance=sandbox.instance, number="+5511977770408", text="did it go?",
            since=since - timedelta(seconds=5), until=datetime.now(timezone.utc) + timedelta(seconds=5),
        )

    assert found is not None
    assert found.remote_jid == "5511977770408@s.whatsapp.net"
    assert found.message_id == sandbox.sent_messages()[0]["key"]["id"]


def test_latency_delays_every_send(sandbox, client):
    sandbox.set_latency(300)

    started = time.monotonic()
    client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")

    assert time.monotonic() - started >= 0.3


# --- connectionState -------------------------------------------------------------------------------------------


def test_connection_state_reports_open_by_default(sandbox, raw, client):
    body = raw.get(f"/instance/connectionState/{sandbox.instance}").json()

    assert body == {"instance": {"instanceName": sandbox.instance, "state": "open"}}
    assert client.connection_state(instance=sandbox.instance) == "open"


def test_a_closed_instance_reports_close_and_sends_fail_temporarily(sandbox, client):
    sandbox.set_state("close")

    assert client.connection_state(instance=sandbox.instance) == "close"
    with pytest.raises(TemporaryError) as caught:
        client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")
    assert (caught.value.kind, caught.value.detail) == ("server_error", "Connection Closed")

    sandbox.set_state("open")
    assert client.send_text(instance=sandbox.instance, number="5511977771234", text="hi").status == "PENDING"


def test_fetch_instances_shows_the_global_key_every_instance_and_a_token_only_its_own():
    extra = start_sandbox_in_thread(api_key="global", instances=["first", "second"])
    try:
        rows = httpx.get(f"{extra.url}/instance/fetchInstances", headers={"apikey": "global"}).json()
        assert [row["name"] for row in rows] == ["first", "second"]
        token = rows[0]["token"]

        own = httpx.get(f"{extra.url}/instance/fetchInstances", headers={"apikey": token}).json()
        message = {"number": "5511977771234", "text": "x"}
        other = httpx.post(f"{extra.url}/message/sendText/second", headers={"apikey": token}, json=message)
        mine = httpx.post(f"{extra.url}/message/sendText/first", headers={"apikey": token}, json=message)
    finally:
        extra.stop()

    assert [row["name"] for row in own] == ["first"]
    assert (other.status_code, mine.status_code) == (401, 201)


# --- findMessages ----------------------------------------------------------------------------------------------


def find(raw, sandbox, body) -> dict:
    response = raw.post(f"/chat/findMessages/{sandbox.instance}", json=body)
    assert response.status_code == 200
    return response.json()["messages"]


def test_find_messages_pages_newest_first(sandbox, raw, client):
    sent = [client.send_text(instance=sandbox.instance, number="5511977771234", text=f"n{i}") for i in range(5)]
    newest_first = [s.message_id for s in reversed(sent)]

    first = find(raw, sandbox, {"where": {"key": {"fromMe": True}}, "page": 1, "offset": 2})
    last = find(raw, sandbox, {"where": {"key": {"fromMe": True}}, "page": 3, "offset": 2})

    assert (first["total"], first["pages"], first["currentPage"]) == (5, 3, 1)
    assert [r["key"]["id"] for r in first["records"]] == newest_first[:2]
    assert [r["key"]["id"] for r in last["records"]] == newest_first[4:]


def test_find_messages_filters_by_jid_and_key_id(sandbox, raw, client):
    one = client.send_text(instance=sandbox.instance, number="5511977771111", text="a")
    client.send_text(instance=sandbox.instance, number="5511977772222", text="b")

    by_jid = find(raw, sandbox, {"where": {"key": {"remoteJid": "5511977771111@s.whatsapp.net"}}})
    by_id = find(raw, sandbox, {"where": {"key": {"id": one.message_id}}})

    assert [r["key"]["id"] for r in by_jid["records"]] == [one.message_id]
    assert [r["key"]["id"] for r in by_id["records"]] == [one.message_id]


def test_find_messages_applies_the_time_filter_only_when_both_bounds_are_given(sandbox, raw, client):
    client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")
    long_ago = {"gte": "2020-01-01T00:00:00Z", "lte": "2020-01-02T00:00:00Z"}
    around_now = {
        "gte": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(),
        "lte": int((time.time() + 60) * 1000),  # JS Date also takes milliseconds
    }

    assert find(raw, sandbox, {"where": {"messageTimestamp": long_ago}})["total"] == 0
    assert find(raw, sandbox, {"where": {"messageTimestamp": {"gte": long_ago["gte"]}}})["total"] == 1
    assert find(raw, sandbox, {"where": {"messageTimestamp": around_now}})["total"] == 1


def test_find_messages_records_carry_the_message_update_statuses(sandbox, raw, client):
    sandbox.set_receipts(delivered_after=0.1, read_after=0.1)
    sent = client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")

    def statuses():
        records = find(raw, sandbox, {"where": {"key": {"id": sent.message_id}}})["records"]
        return [u["status"] for u in records[0]["MessageUpdate"]] if records else []

    wait_for(lambda: statuses() == ["SERVER_ACK", "DELIVERY_ACK"], what="delivered, not yet read")
    found = client.find_sent_message(
        instance=sandbox.instance, number="5511977771234", text="ignored", since=datetime.now(timezone.utc),
        until=datetime.now(timezone.utc), message_id=sent.message_id,
    )
    assert found.status == "DELIVERY_ACK"
    wait_for(lambda: statuses() == ["SERVER_ACK", "DELIVERY_ACK", "READ"], what="read")
    assert sandbox.sent_messages()[0]["status"] == "READ"


def test_find_sent_message_matches_the_text_within_the_window(sandbox, client):
    sent = client.send_text(instance=sandbox.instance, number="+5511977771234", text="your code is 1234")
    client.send_text(instance=sandbox.instance, number="+5511977771234", text="something else")
    now = datetime.now(timezone.utc)

    def lookup(text, since, until):
        return client.find_sent_message(
            instance=sandbox.instance, number="+5511977771234", text=text, since=since, until=until
        )

    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    assert lookup("your code is 1234", now - minute, now + minute).message_id == sent.message_id
    assert lookup("your code is 9999", now - minute, now + minute) is None
    assert lookup("your code is 1234", now - 2 * hour, now - hour) is None


def test_find_sent_message_finds_a_message_stored_under_evolutions_rewritten_jid(sandbox, client):
    sent = client.send_text(instance=sandbox.instance, number="+5531987651234", text="hi")
    now = datetime.now(timezone.utc)

    found = client.find_sent_message(
        instance=sandbox.instance, number="+5531987651234", text="hi",
        since=now - timedelta(minutes=1), until=now + timedelta(minutes=1),
    )

    assert sent.remote_jid == "553187651234@s.whatsapp.net"
    assert found is not None and found.message_id == sent.message_id


# --- webhooks --------------------------------------------------------------------------------------------------


class WebhookReceiver:
    """A tiny HTTP server on 127.0.0.1 that records every JSON POST it gets."""

    def __init__(self, status: int = 200):
        self.events: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.events.append((self.path, json.loads(self.rfile.read(length)), dict(self.headers)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/evolution"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def events_named(self, name: str) -> list[dict]:
        return [body for _, body, _ in self.events if body["event"] == name]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(sandbox, raw):
    receiver = WebhookReceiver()
    yield receiver
    # The session's sandbox keeps webhooks across reset(): switch this one off before the receiver goes away.
    raw.post(f"/webhook/set/{sandbox.instance}", json={"webhook": {"enabled": False, "url": receiver.url}})
    receiver.close()


def set_webhook(raw, sandbox, **webhook) -> httpx.Response:
    return raw.post(f"/webhook/set/{sandbox.instance}", json={"webhook": {"enabled": True, **webhook}})


def test_webhook_set_answers_201_with_the_row_and_find_reads_it_back(sandbox, raw, receiver):
    response = set_webhook(raw, sandbox, url=receiver.url, headers={"x-token": "s"}, events=["MESSAGES_UPDATE"])

    assert response.status_code == 201
    row = response.json()
    assert {"id", "url", "headers", "enabled", "events", "webhookByEvents", "webhookBase64", "instanceId"} <= set(row)
    assert (row["url"], row["events"], row["headers"]) == (receiver.url, ["MESSAGES_UPDATE"], {"x-token": "s"})
    assert raw.get(f"/webhook/find/{sandbox.instance}").json() == row


def test_webhook_set_rejects_a_missing_webhook_object_and_a_bad_url(sandbox, raw):
    flat = raw.post(f"/webhook/set/{sandbox.instance}", json={"url": "http://x.test", "enabled": True})
    bad_url = set_webhook(raw, sandbox, url="not a url")

    assert (flat.status_code, flat.json()["response"]["message"]) == (400, [['instance requires property "webhook"']])
    assert (bad_url.status_code, bad_url.json()["response"]["message"]) == (400, ['Invalid "url" property'])


def test_it_posts_send_message_then_server_delivery_and_read_acks_to_the_webhook(sandbox, raw, client, receiver):
    set_webhook(raw, sandbox, url=receiver.url, headers={"x-token": "s3cret"}, events=[])
    sandbox.set_receipts(delivered_after=0.3, read_after=0.4)

    started = time.monotonic()
    sent = client.send_text(instance=sandbox.instance, number="+5511977771234", text="hi")

    wait_for(lambda: len(receiver.events) >= 4)
    paths = {path for path, _, _ in receiver.events}
    events = [body for _, body, _ in receiver.events]
    assert paths == {"/hooks/evolution"}
    assert [e["event"] for e in events] == ["send.message", "messages.update", "messages.update", "messages.update"]
    first = events[0]
    assert first["instance"] == sandbox.instance and first["destination"] == receiver.url
    assert first["data"]["key"]["id"] == sent.message_id and first["data"]["status"] == "PENDING"
    assert first["date_time"].endswith("Z") and first["sender"].endswith("@s.whatsapp.net")
    assert first["server_url"] == sandbox.url and first["apikey"] is None
    updates = [(e["data"]["keyId"], e["data"]["status"], e["data"]["fromMe"]) for e in events[1:]]
    assert updates == [
        (sent.message_id, "SERVER_ACK", True), (sent.message_id, "DELIVERY_ACK", True), (sent.message_id, "READ", True),
    ]
    # The contract's messages.update shape, and nothing else.
    assert set(events[3]["data"]) == {"keyId", "remoteJid", "fromMe", "status", "instanceId", "messageId"}
    assert events[3]["data"]["remoteJid"] == sent.remote_jid
    assert all(headers.get("x-token") == "s3cret" for _, _, headers in receiver.events)
    # Each receipt at its time: delivered 0.3 s after the send, read 0.4 s after that.
    assert time.monotonic() - started >= 0.7


def test_receipt_timing_is_read_and_changed_at_run_time_and_reset_puts_it_back(sandbox, raw):
    start = raw.get("/_sandbox/receipts").json()

    assert start == {"delivered_after": 0.1, "read_after": 2.0}
    assert sandbox.set_receipts(read_after=None) == {"delivered_after": 0.1, "read_after": None}
    assert sandbox.set_receipts(delivered_after=1) == {"delivered_after": 1.0, "read_after": None}
    for bad in ({"delivered_after": -1}, {"read_after": "soon"}, {"delivered_after": None}, {"later": 1}, {}):
        assert raw.post("/_sandbox/receipts", json=bad).status_code == 400, bad
    sandbox.reset()
    assert raw.get("/_sandbox/receipts").json() == start


def test_a_message_whose_read_after_is_never_stays_delivered(sandbox, raw, client, receiver):
    set_webhook(raw, sandbox, url=receiver.url, events=["MESSAGES_UPDATE"])
    sandbox.set_receipts(delivered_after=0, read_after=None)

    client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")

    wait_for(lambda: len(receiver.events) >= 2)
    time.sleep(0.3)
    assert [body["data"]["status"] for _, body, _ in receiver.events] == ["SERVER_ACK", "DELIVERY_ACK"]
    assert sandbox.sent_messages()[0]["status"] == "DELIVERY_ACK"


def test_a_by_events_webhook_gets_each_event_on_its_own_path(sandbox, raw, client, receiver):
    set_webhook(raw, sandbox, url=receiver.url, byEvents=True, events=["SEND_MESSAGE", "MESSAGES_UPDATE"])
    sandbox.set_receipts(read_after=0)

    client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")

    wait_for(lambda: len(receiver.events) >= 4)
    assert [path for path, _, _ in receiver.events] == [
        "/hooks/evolution/send-message", "/hooks/evolution/messages-update", "/hooks/evolution/messages-update",
        "/hooks/evolution/messages-update",
    ]


def test_only_the_chosen_events_are_delivered(sandbox, raw, client, receiver):
    set_webhook(raw, sandbox, url=receiver.url, events=["MESSAGES_UPDATE"])

    client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")

    wait_for(lambda: len(receiver.events) >= 2)
    time.sleep(0.2)
    assert {body["event"] for _, body, _ in receiver.events} == {"messages.update"}


def test_inbound_emits_messages_upsert_from_the_contact(sandbox, raw, receiver):
    set_webhook(raw, sandbox, url=receiver.url, events=["MESSAGES_UPSERT"])

    answer = sandbox.inbound(number="+5511977771234", text="STOP", push_name="Ana")

    assert answer["webhook_status"] == 200
    (upsert,) = receiver.events_named("messages.upsert")
    data = upsert["data"]
    assert data["key"]["fromMe"] is False and data["key"]["remoteJid"] == "5511977771234@s.whatsapp.net"
    assert (data["pushName"], data["status"], data["message"]) == ("Ana", "DELIVERY_ACK", {"conversation": "STOP"})
    assert sandbox.sent_messages() == []  # inbound messages are not "sent"


def test_a_failing_webhook_never_blocks_a_send(sandbox, raw, client, receiver):
    dead_url = f"http://127.0.0.1:{free_port()}/gone"  # nothing listens there
    set_webhook(raw, sandbox, url=dead_url)

    started = time.monotonic()
    sent = client.send_text(instance=sandbox.instance, number="5511977771234", text="hi")

    assert sent.status == "PENDING" and time.monotonic() - started < 1


# --- the management command ------------------------------------------------------------------------------------


def test_the_management_command_serves_the_sandbox_on_the_given_port():
    port = free_port()
    command = [
        sys.executable, "manage.py", "evolution_sandbox", "--port", str(port),
        "--api-key", "cmd-key", "--instances", "alpha,beta", "--quiet", "--delivered-after", "0.5",
        "--read-after", "never",
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first_line = process.stdout.readline()  # printed once the app is built, just before it binds

        def answering():
            try:
                url = f"http://127.0.0.1:{port}/instance/connectionState/beta"
                return httpx.get(url, headers={"apikey": "cmd-key"})
            except httpx.TransportError:
                return None

        state = wait_for(answering, timeout=30)
        with EvolutionClient(base_url=f"http://127.0.0.1:{port}", api_key="cmd-key") as client:
            sent = client.send_text(instance="alpha", number="+5511977771234", text="hi")
        receipts = httpx.get(f"http://127.0.0.1:{port}/_sandbox/receipts").json()
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert f"http://127.0.0.1:{port}" in first_line and "alpha, beta" in first_line
    assert state.json() == {"instance": {"instanceName": "beta", "state": "open"}}
    assert sent.remote_jid == "5511977771234@s.whatsapp.net"
    assert receipts == {"delivered_after": 0.5, "read_after": None}
    assert "delivered after 0.5 s, never read" in first_line


def test_the_management_command_refuses_a_receipt_delay_that_is_not_seconds():
    command = [sys.executable, "manage.py", "evolution_sandbox", "--port", str(free_port()), "--read-after", "soon"]
    refused = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    assert refused.returncode != 0 and "--read-after" in refused.stderr and "'soon'" in refused.stderr
