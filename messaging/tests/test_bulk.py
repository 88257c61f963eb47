"""POST /messages/bulk: each item stands on its own; accepted ones are stored and enqueued, rejected ones are not."""
import json

import pytest
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from rest_framework.test import APIClient

from tests_support import take_waiting_tasks, wait_for
from access.models import ApiClient
from config.celery import BULK_QUEUE, MAINTENANCE_QUEUE, TRANSACTIONAL_QUEUE, app
from messaging import idempotency, services
from messaging.models import AttemptOutcome, FINAL_STATUSES, MessageStatus, OutboundMessage


def post_bulk(api, messages):
    return api.post("/messages/bulk", data=json.dumps({"messages": messages}), content_type="application/json")


@pytest.mark.django_db
def test_it_answers_per_item_with_the_id_or_the_field_errors_and_stores_only_the_valid_ones(
    api, sandbox_settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_bulk(api, [
            {"phone": "+55 11 98765-4321", "message": "first"},
            {"phone": "12", "message": "bad phone"},
            {"phone": "+55 11 98765-4322", "message": "   "},
            {"phone": "+55 11 98765-4323", "message": "third", "instance_name": "nope"},
            "not an object",
            {"phone": 5511987654324, "message": "phone must be a string"},
            {"phone": "+55 11 98765-4325", "message": "later", "scheduled_at": "not a date"},
            {"phone": "+55 11 98765-4326", "message": "last"},
        ])
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["success"], body["accepted"], body["rejected"]) == (True, 2, 6)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(8))
    assert list(results[1]["errors"]) == ["phone"]
    assert list(results[2]["errors"]) == ["message"]
    assert list(results[3]["errors"]) == ["instance_name"]
    assert list(results[4]["errors"]) == ["non_field_errors"]
    assert list(results[5]["errors"]) == ["phone"]
    assert list(results[6]["errors"]) == ["scheduled_at"]
    stored = {m.pk: m for m in OutboundMessage.objects.all()}
    assert sorted(stored) == sorted([results[0]["id"], results[7]["id"]])
    assert [stored[results[0]["id"]].text, stored[results[7]["id"]].text] == ["first", "last"]
    for result in (results[0], results[7]):
        message = stored[result["id"]]
        assert (message.status, message.task_id, message.phone[:12]) == (MessageStatus.QUEUED, result["task_id"], "+55119876543")
    # One publish for the whole batch, and only after the commit.
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_a_request_whose_items_are_all_rejected_writes_nothing_and_answers_400(
    api, sandbox_settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_bulk(api, [{"phone": "12", "message": "x"}, {"message": "no phone"}])
    assert response.status_code == 400
    body = response.json()
    assert (body["success"], body["accepted"], body["rejected"]) == (False, 0, 2)
    assert body["error"]["code"] == "invalid"
    assert set(body["error"]["fields"]["messages"]) == {"0", "1"}
    assert OutboundMessage.objects.count() == 0
    assert callbacks == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [{"messages": []}, {"messages": "x"}, {}, [], {"messages": [{"phone": "+5511987654321", "message": "m"}] * 1001}],
)
def test_it_rejects_a_malformed_or_oversized_envelope_naming_messages(api, sandbox_settings, payload):
    response = api.post("/messages/bulk", data=json.dumps(payload), content_type="application/json")
    assert response.status_code == 400
    assert "messages" in response.json()["error"]["fields"]
    assert OutboundMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_every_accepted_item_is_sent_once_by_the_workers(api, celery_worker, evolution_sandbox):
    phones = [f"+5511987{n:06d}"[:14] for n in range(654300, 654320)]
    response = post_bulk(api, [{"phone": phone, "message": f"bulk {i}"} for i, phone in enumerate(phones)])
    assert response.status_code == 202, response.content
    ids = [result["id"] for result in response.json()["results"]]
    assert len(ids) == 20
    wait_for(lambda: OutboundMessage.objects.filter(pk__in=ids, status__in=FINAL_STATUSES).count() == 20, timeout=30)
    for message in OutboundMessage.objects.filter(pk__in=ids):
        assert message.status == MessageStatus.SENT
        assert list(message.attempts.values_list("outcome", flat=True)) == [AttemptOutcome.SENT]
    sent = [m["number"].lstrip("+") for m in evolution_sandbox.sent_messages()]
    assert sorted(sent) == sorted(p.lstrip("+") for p in phones)


@pytest.mark.django_db(transaction=True)
def test_each_task_is_published_to_its_own_queue_only(sandbox_settings):
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        queues = {name: queue.bind(channel) for name, queue in app.amqp.queues.items()}
        for queue in queues.values():
            queue.declare()  # as a worker does at start
            queue.purge()
        try:
            services.accept_message(phone="+5511987654321", text="one queue")
            sends = {name: queue.queue_declare().message_count for name, queue in queues.items()}
            for queue in queues.values():
                queue.purge()
            app.send_task("requeue_stuck_messages")  # routed by Celery to the maintenance queue
            maintenance = {name: queue.queue_declare().message_count for name, queue in queues.items()}
        finally:
            for queue in queues.values():
                queue.purge()
    assert sends == {TRANSACTIONAL_QUEUE: 1, BULK_QUEUE: 0, MAINTENANCE_QUEUE: 0}
    assert maintenance == {TRANSACTIONAL_QUEUE: 0, BULK_QUEUE: 0, MAINTENANCE_QUEUE: 1}


@pytest.mark.django_db
def test_a_full_batch_of_the_longest_texts_is_accepted(api, sandbox_settings):
    # A full bulk is more than API_MESSAGE_RATE's default allows one caller at once (600): this test is about size.
    sandbox_settings.REST_FRAMEWORK = {**sandbox_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **sandbox_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "messages": None}}
    # 1,000 texts of 4,096 characters (with accents, escaped in JSON) is well past Django's default 2.5 MB body.
    text = ("Olá " * 1024)[:4096]
    response = post_bulk(api, [{"phone": f"+55 11 9{i:04d}-4321", "message": text} for i in range(1000)])
    assert response.status_code == 202, response.content[:300]
    assert response.json()["accepted"] == 1000
    assert OutboundMessage.objects.count() == 1000


@pytest.mark.parametrize(
    "bad_item, field",
    [
        ({"phone": "+55 11 98765-4322", "message": "hi", "instance_name": "\ud800"}, "instance_name"),
        ({"phone": "+55 11 98765-4322", "message": "a\x00b"}, "message"),
        ({"phone": "+55 11 98765-4322", "message": "a\ud800b"}, "message"),
        ({"phone": "+55 11 98765-4322", "message": "hi", "scheduled_at": "2030-01-01T10:00:00+23:59"}, None),
        ({"phone": "+55 11 98765-4322", "message": "hi", "scheduled_at": "9999-12-31T23:59:59-14:00"}, "scheduled_at"),
        ({"phone": "+55 11 98765-4322", "message": "hi", "callback_url": "https://example.com/a\x00b"}, "callback_url"),
        ({"phone": "+55 11 98765-4322", "message": "hi", "callback_url": "https://example.com/\ud800"}, "callback_url"),
    ],
)
@pytest.mark.django_db
def test_text_and_times_postgresql_cannot_store_are_rejected_per_item_not_a_server_error(api, sandbox_settings, bad_item, field):
    caller = api
    if "callback_url" in bad_item:  # callbacks are signed with an API client's secret: only a client may ask for them
        _, key = ApiClient.objects.create_client(name="shop")
        caller = APIClient()
        caller.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = post_bulk(caller, [{"phone": "+55 11 98765-4321", "message": "fine"}, bad_item])
    assert response.status_code == 202, response.content[:300]
    results = response.json()["results"]
    assert "id" in results[0]
    if field is None:  # an offset PostgreSQL refuses is still a valid instant: stored in UTC
        assert "id" in results[1]
        assert OutboundMessage.objects.get(pk=results[1]["id"]).scheduled_at.isoformat() == "2029-12-31T10:01:00+00:00"
    else:
        assert list(results[1]["errors"]) == [field]
        assert OutboundMessage.objects.count() == 1
    assert api.get("/messages").status_code == 200


def published_send_tasks(queue_name=BULK_QUEUE) -> list[tuple[str, int]]:
    """Take every task waiting in a send queue (bulk requests go to the bulk one): (task id, message id) each."""
    return [(headers["id"], argument) for headers, argument in take_waiting_tasks(queue_name)]


@pytest.mark.django_db(transaction=True)
def test_only_the_items_due_now_are_published_and_the_scheduled_ones_wait_for_beat(api, sandbox_settings):
    from datetime import timedelta

    from django.utils import timezone

    from messaging import maintenance

    app.control.purge()
    later = (timezone.now() + timedelta(seconds=1)).isoformat()
    response = post_bulk(api, [
        {"phone": "+55 11 98765-4321", "message": "now"},
        {"phone": "+55 11 98765-4322", "message": "later", "scheduled_at": later},
    ])
    now_item, later_item = response.json()["results"]

    assert published_send_tasks() == [(now_item["task_id"], now_item["id"])]
    assert later_item["task_id"] is None
    wait_for(lambda: timezone.now().isoformat() > later, timeout=5)
    assert maintenance.dispatch_due_messages() == 1
    released = OutboundMessage.objects.get(pk=later_item["id"])
    assert published_send_tasks() == [(released.task_id, released.pk)]


@pytest.mark.django_db
def test_a_repeated_item_key_returns_the_first_message_and_another_request_under_it_is_refused(sandbox_settings):
    item = {"phone": "+5511987654321", "text": "run 7, contact 42", "idempotency_key": idempotency.Key("campaign", "run-7:42")}
    first = services.accept_messages(items=[item], source="campaign:7")[0]
    again, reused = services.accept_messages(items=[item, {**item, "text": "something else"}])

    assert (first.created, again.created, again.message.pk) == (True, False, first.message.pk)
    assert list(reused.errors) == ["idempotency_key"]
    assert OutboundMessage.objects.get().source == "campaign:7"


@pytest.mark.django_db
def test_a_message_built_for_a_bulk_request_is_the_one_django_would_make_and_saves_the_same(django_user_model):
    user = django_user_model.objects.create_user("builder")
    values = dict(phone="+5511987654321", text="hi", instance="console", status=MessageStatus.QUEUED,
                  task_id="t-1", created_by=user, source="api")
    built, made = OutboundMessage.build(**values), OutboundMessage(**values)
    # build sets attributes straight into the instance: no field may have a descriptor whose assignment does
    # more than that to a new instance (a foreign key's id only drops a cached object, which a new one has not).
    for field in OutboundMessage._meta.concrete_fields:
        descriptor = type(OutboundMessage.__dict__.get(field.attname))
        assert descriptor is ForeignKeyDeferredAttribute or not hasattr(descriptor, "__set__"), field.attname
    volatile = {"created_at", "updated_at"}  # timezone.now() for each
    fields = [f.attname for f in OutboundMessage._meta.concrete_fields if f.attname not in volatile]
    assert {name: getattr(built, name) for name in fields} == {name: getattr(made, name) for name in fields}
    assert built.created_by is user and built._state.adding and built._state.db is None
    built.save()
    assert OutboundMessage.objects.get(pk=built.pk).created_by_id == user.pk


def test_a_receiver_of_post_init_still_sees_every_built_message():
    from django.db.models.signals import post_init

    seen = []

    def watch(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(watch, sender=OutboundMessage)
    try:
        built = OutboundMessage.build(phone="+5511987654321", text="hi", instance="console", task_id="t-2")
    finally:
        post_init.disconnect(watch, sender=OutboundMessage)
    assert seen == [built]
