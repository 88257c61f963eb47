"""How EvolutionClient turns each Evolution API outcome into a result or a classified error.

Narrow unit tests with respx standing in for the server; the same behaviour against a real HTTP server is
in test_sandbox_contract.py.
"""
import gc
import json
import pickle
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx

from evolution.client import (
    EvolutionClient,
    EvolutionError,
    PermanentError,
    SentMessage,
    TemporaryError,
    get_client,
)

BASE = "http://evolution.test"
SEND = f"{BASE}/message/sendText/main"
FIND = f"{BASE}/chat/findMessages/main"
STATE = f"{BASE}/instance/connectionState/main"


def envelope(status: int, error: str, message) -> dict:
    return {"status": status, "error": error, "response": {"message": message}}


def sent_body(**overrides) -> dict:
    body = {
        "key": {"remoteJid": "5511999999999@s.whatsapp.net", "fromMe": True, "id": "3EB0A1B2C3D4E5F60718"},
        "pushName": "Você",
        "status": "PENDING",
        "message": {"conversation": "hi"},
        "contextInfo": {},
        "messageType": "conversation",
        "messageTimestamp": 1717689097,
        "instanceId": "0b4f7a55-0000-4000-8000-000000000000",
        "source": "web",
    }
    body.update(overrides)
    return body


@pytest.fixture
def client():
    client = EvolutionClient(base_url=BASE + "/", api_key="secret", timeout=15.0, connect_timeout=3.0)
    yield client
    client.close()


@pytest.fixture
def evolution():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def send_error(client, evolution, **response) -> EvolutionError:
    evolution.post(SEND).mock(**response) if "side_effect" in response else evolution.post(SEND).respond(**response)
    with pytest.raises(EvolutionError) as caught:
        client.send_text(instance="main", number="+5511999999999", text="hi")
    return caught.value


# --- success ---------------------------------------------------------------------------------------------------


def test_it_posts_the_number_as_digits_with_the_apikey_header_and_explicit_timeouts(client, evolution):
    route = evolution.post(SEND).respond(201, json=sent_body())

    client.send_text(instance="main", number="+55 (11) 99999-9999", text="hi")

    request = route.calls.last.request
    assert request.headers["apikey"] == "secret"
    assert json.loads(request.content) == {"number": "5511999999999", "text": "hi"}
    assert request.extensions["timeout"] == {"connect": 3.0, "read": 15.0, "write": 15.0, "pool": 15.0}


def test_it_returns_the_whatsapp_id_jid_status_and_timestamp_of_a_201(client, evolution):
    evolution.post(SEND).respond(201, json=sent_body(key={"remoteJid": "551199999999@s.whatsapp.net", "id": "3EB0X"}))

    sent = client.send_text(instance="main", number="5511999999999", text="hi")

    assert sent == SentMessage(
        message_id="3EB0X", remote_jid="551199999999@s.whatsapp.net", status="PENDING", timestamp=1717689097
    )


# --- 4xx and 5xx -----------------------------------------------------------------------------------------------


def test_a_number_not_on_whatsapp_is_permanent_and_named_in_the_detail(client, evolution):
    lookup = {"jid": "5511999999999@s.whatsapp.net", "exists": False, "number": "5511999999999"}
    body = envelope(400, "Bad Request", [lookup])

    error = send_error(client, evolution, status_code=400, json=body)

    assert isinstance(error, PermanentError)
    assert (error.kind, error.status_code, error.retryable, error.maybe_sent) == ("not_on_whatsapp", 400, False, False)
    assert "5511999999999" in error.detail


def test_a_nested_validation_array_is_a_permanent_validation_error(client, evolution):
    body = envelope(400, "Bad Request", [['instance requires property "text"', "Invalid format"]])

    error = send_error(client, evolution, status_code=400, json=body)

    assert isinstance(error, PermanentError)
    assert error.kind == "validation"
    assert error.detail == 'instance requires property "text"; Invalid format'


def test_text_is_required_is_a_permanent_validation_error(client, evolution):
    error = send_error(client, evolution, status_code=400, json=envelope(400, "Bad Request", ["Text is required"]))

    assert isinstance(error, PermanentError)
    assert (error.kind, error.detail) == ("validation", "Text is required")


@pytest.mark.parametrize("message", ["Error: Connection Closed", "Error: Timed Out"])
def test_a_send_step_error_400_is_temporary_and_may_have_been_sent(client, evolution, message):
    error = send_error(client, evolution, status_code=400, json=envelope(400, "Bad Request", [message]))

    assert isinstance(error, TemporaryError)
    assert (error.kind, error.detail, error.retryable, error.maybe_sent) == ("send_error", message, True, True)


def test_a_401_is_a_permanent_unauthorized_error(client, evolution):
    error = send_error(client, evolution, status_code=401, json=envelope(401, "Unauthorized", "Unauthorized"))

    assert isinstance(error, PermanentError)
    assert (error.kind, error.status_code) == ("unauthorized", 401)


@pytest.mark.parametrize(
    "message", [['The "main" instance does not exist'], ["Cannot POST /message/sendText/main"]]
)
def test_a_404_is_a_permanent_unknown_instance_error_carrying_evolutions_message(client, evolution, message):
    error = send_error(client, evolution, status_code=404, json=envelope(404, "Not Found", message))

    assert isinstance(error, PermanentError)
    assert (error.kind, error.detail) == ("unknown_instance", message[0])


def test_a_429_is_temporary(client, evolution):
    error = send_error(client, evolution, status_code=429, text="Too Many Requests")

    assert isinstance(error, TemporaryError)
    assert (error.kind, error.maybe_sent) == ("rate_limited", False)


@pytest.mark.parametrize(
    "message", ["Connection Closed", "Cannot read properties of undefined (reading 'textMessage')"]
)
def test_evolutions_own_500_is_temporary_and_was_not_sent(client, evolution, message):
    error = send_error(client, evolution, status_code=500, json=envelope(500, "Internal Server Error", message))

    assert isinstance(error, TemporaryError)
    assert (error.kind, error.detail, error.maybe_sent) == ("server_error", message, False)


def test_a_bare_gateway_5xx_is_temporary_and_may_have_been_sent(client, evolution):
    error = send_error(client, evolution, status_code=504, text="<html>504 Gateway Time-out</html>")

    assert isinstance(error, TemporaryError)
    assert (error.kind, error.status_code, error.maybe_sent) == ("server_error", 504, True)


def test_a_503_license_wall_is_a_permanent_configuration_error(client, evolution):
    body = envelope(503, "Service Unavailable", {"code": "LICENSE_REQUIRED", "message": "activate your licence"})

    error = send_error(client, evolution, status_code=503, json=body)

    assert isinstance(error, PermanentError)
    assert error.kind == "configuration"


# --- the network -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow connect")])
def test_failing_to_connect_is_temporary_and_nothing_was_sent(client, evolution, failure):
    error = send_error(client, evolution, side_effect=failure)

    assert isinstance(error, TemporaryError)
    assert (error.kind, error.maybe_sent) == ("connection_error", False)


@pytest.mark.parametrize(
    "failure, kind",
    [
        (httpx.ReadTimeout("no answer"), "timeout"),
        (httpx.WriteTimeout("stuck writing"), "timeout"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "connection_error"),
        (httpx.ReadError("connection reset by peer"), "connection_error"),
    ],
)
def test_breaking_after_the_request_was_written_is_temporary_and_may_have_been_sent(client, evolution, failure, kind):
    error = send_error(client, evolution, side_effect=failure)

    assert isinstance(error, TemporaryError)
    assert (error.kind, error.maybe_sent) == (kind, True)


def test_a_read_timeout_on_a_lookup_cannot_have_sent_anything(client, evolution):
    evolution.get(STATE).mock(side_effect=httpx.ReadTimeout("no answer"))

    with pytest.raises(TemporaryError) as caught:
        client.connection_state(instance="main")

    assert (caught.value.kind, caught.value.maybe_sent) == ("timeout", False)


@pytest.mark.parametrize(
    "response",
    [
        {"status_code": 201, "text": "<html>proxy says hi</html>"},
        {"status_code": 201, "json": {"unexpected": True}},
        {"status_code": 200, "json": ["not", "an", "object"]},
    ],
)
def test_an_unreadable_2xx_is_temporary_and_may_have_been_sent(client, evolution, response):
    error = send_error(client, evolution, **response)

    assert isinstance(error, TemporaryError)
    assert (error.kind, error.maybe_sent) == ("bad_response", True)


def test_errors_survive_pickling_between_processes():
    error = TemporaryError("Error: Timed Out", kind="send_error", status_code=400, maybe_sent=True)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is TemporaryError
    assert (copy.detail, copy.kind, copy.status_code, copy.maybe_sent) == ("Error: Timed Out", "send_error", 400, True)
    assert str(copy) == "send_error http=400: Error: Timed Out"


# --- connectionState and findMessages --------------------------------------------------------------------------


def test_connection_state_returns_the_state_string(client, evolution):
    evolution.get(STATE).respond(200, json={"instance": {"instanceName": "main", "state": "connecting"}})

    assert client.connection_state(instance="main") == "connecting"


def test_connection_state_raises_the_mapped_error_for_an_unknown_instance(client, evolution):
    evolution.get(STATE).respond(404, json=envelope(404, "Not Found", ['The "main" instance does not exist']))

    with pytest.raises(PermanentError) as caught:
        client.connection_state(instance="main")

    assert caught.value.kind == "unknown_instance"


def found_page(records, *, pages=1, page=1) -> dict:
    return {"messages": {"total": len(records), "pages": pages, "currentPage": page, "records": records}}


def record(text="hi", *, key_id="3EB0AAAA", updates=("SERVER_ACK",), extended=False) -> dict:
    message = {"extendedTextMessage": {"text": text}} if extended else {"conversation": text}
    return {
        "id": "cm0000",
        "key": {"remoteJid": "5511999999999@s.whatsapp.net", "fromMe": True, "id": key_id},
        "message": message,
        "messageTimestamp": 1717689097,
        "MessageUpdate": [{"status": status} for status in updates],
    }


def test_find_sent_message_asks_by_key_id_when_it_has_one(client, evolution):
    route = evolution.post(FIND).respond(200, json=found_page([record(key_id="3EB0ID")]))

    found = client.find_sent_message(
        instance="main", number="+5511999999999", text="whatever", since=datetime.now(timezone.utc),
        until=datetime.now(timezone.utc), message_id="3EB0ID",
    )

    assert found is not None and found.message_id == "3EB0ID"
    assert json.loads(route.calls.last.request.content)["where"] == {"key": {"id": "3EB0ID"}}


def test_find_sent_message_asks_by_jid_from_me_and_both_time_bounds_then_matches_the_text(client, evolution):
    route = evolution.post(FIND).respond(
        200, json=found_page([record("other text", key_id="3EB0NO"), record("hi", key_id="3EB0YES", extended=True)])
    )
    since = datetime(2025, 1, 1, 10, 0, tzinfo=timezone.utc)

    found = client.find_sent_message(
        instance="main", number="+5511999999999", text="hi", since=since, until=since + timedelta(minutes=10)
    )

    assert found == SentMessage(
        message_id="3EB0YES", remote_jid="5511999999999@s.whatsapp.net", status="SERVER_ACK", timestamp=1717689097
    )
    body = json.loads(route.calls.last.request.content)
    assert body["where"] == {
        "key": {"remoteJid": "5511999999999@s.whatsapp.net", "fromMe": True},
        "messageTimestamp": {"gte": "2025-01-01T10:00:00.000Z", "lte": "2025-01-01T10:10:00.000Z"},
    }


def test_find_sent_message_reports_the_furthest_status_whatever_the_order_of_updates(client, evolution):
    evolution.post(FIND).respond(200, json=found_page([record(updates=("READ", "SERVER_ACK", "DELIVERY_ACK"))]))

    found = client.find_sent_message(
        instance="main", number="5511999999999", text="hi", since=datetime.now(timezone.utc),
        until=datetime.now(timezone.utc), message_id="3EB0AAAA",
    )

    assert found.status == "READ"


def test_find_sent_message_reads_further_pages_and_returns_none_without_a_match(client, evolution):
    route = evolution.post(FIND).mock(
        side_effect=[
            httpx.Response(200, json=found_page([record("a")], pages=2, page=1)),
            httpx.Response(200, json=found_page([record("b")], pages=2, page=2)),
        ]
    )

    found = client.find_sent_message(
        instance="main", number="5511999999999", text="hi", since=datetime.now(timezone.utc),
        until=datetime.now(timezone.utc),
    )

    assert found is None
    assert [json.loads(call.request.content)["page"] for call in route.calls] == [1, 2]


def test_find_sent_message_also_looks_under_the_jid_evolution_rewrites_the_number_to(client, evolution):
    # Brazilian mobiles in DDD 31+ lose their extra 9 in Evolution's createJid.
    route = evolution.post(FIND).mock(
        side_effect=[httpx.Response(200, json=found_page([])), httpx.Response(200, json=found_page([record("hi")]))]
    )

    found = client.find_sent_message(
        instance="main", number="+5531987651234", text="hi", since=datetime.now(timezone.utc),
        until=datetime.now(timezone.utc),
    )

    assert found is not None
    jids = [json.loads(call.request.content)["where"]["key"]["remoteJid"] for call in route.calls]
    assert jids == ["5531987651234@s.whatsapp.net", "553187651234@s.whatsapp.net"]


# --- one client per thread ---------------------------------------------------------------------------------------


def test_get_client_gives_each_thread_one_client_of_its_own_even_when_threads_race(settings):
    settings.EVOLUTION_API_URL = "http://race.test:9"
    clients, barrier = {}, threading.Barrier(8)

    def take(index):
        barrier.wait(timeout=5)
        clients[index] = [get_client(), get_client()]

    threads = [threading.Thread(target=take, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert len(clients) == 8
    assert all(first is second for first, second in clients.values())  # a thread reuses its own
    assert len({id(first) for first, _ in clients.values()}) == 8  # and shares it with no other thread


def test_a_threads_clients_are_closed_once_the_thread_is_gone(settings):
    settings.EVOLUTION_API_URL = "http://gone.test:9"
    taken = []
    thread = threading.Thread(target=lambda: taken.append(get_client()))
    thread.start()
    thread.join(timeout=5)
    del thread
    gc.collect()

    assert taken[0]._http.is_closed


def test_get_client_follows_the_settings(settings):
    settings.EVOLUTION_API_URL = "http://first.test"
    first = get_client()
    settings.EVOLUTION_API_URL = "http://second.test"
    second = get_client()

    assert first is not second
    assert str(second._http.base_url) == "http://second.test"
